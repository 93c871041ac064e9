//! Reads of platform objects: an entity for an enrichment, a marking definition.

use serde_json::json;

use crate::opencti::client::{OpenctiClient, OpenctiError};
use crate::opencti::types::*;

pub const READ_ENTITY: &str = "query StixCoreObject($id: String!) { stixCoreObject(id: $id) { id standard_id entity_type parent_types objectMarking { id standard_id definition_type definition x_opencti_order } toStix ... on StixCyberObservable { observable_value } } }";

pub const READ_MARKING: &str = "query MarkingDefinition($id: String!) { markingDefinition(id: $id) { id standard_id definition_type definition x_opencti_order } }";

impl OpenctiClient {
    /// A marking definition by id (a playbook bundle's marking that is no static TLP).
    pub async fn read_marking(
        &self,
        id: &str,
    ) -> Result<Option<crate::stix::ObjectMarking>, OpenctiError> {
        self.field(READ_MARKING, json!({ "id": id }), "markingDefinition")
            .await
    }

    /// Reads the entity (access check and markings); `None` when the platform returns null.
    pub async fn read_entity(&self, id: &str) -> Result<Option<EntityRead>, OpenctiError> {
        self.field(READ_ENTITY, json!({ "id": id }), "stixCoreObject")
            .await
    }
}
