//! `#[derive(Keys)]`: a connector section's key table and its `Default`, from its struct.
//!
//! The struct is the one source of a section's keys: each field marked `#[key(...)]` is a
//! key of the table (`KEYS`), documented by the field's doc comment, and its default value
//! is read from that table (the same text the README shows), so the two cannot disagree.
//!
//! ```ignore
//! #[derive(Debug, Clone, Deserialize, Keys)]
//! #[serde(deny_unknown_fields, default)]
//! #[keys(spec = SPEC)]
//! pub struct ExampleConfig {
//!     pub enabled: bool,                    // no `#[key]`: `Default::default()`
//!     /// Base URL of the upstream API.
//!     #[key(kind = Kind::Url, default = "https://api.example.com")]
//!     pub api_base_url: UrlSetting,
//!     /// Example API key.
//!     #[key(kind = Kind::Secret, env = "EXAMPLE_KEY", required, sample = "key")]
//!     pub api_key: Option<Secret>,
//!     #[key(like = KeyDef::RATE_LIMIT)]     // a shared key: its kind, default and doc
//!     pub rate_limit: f64,
//!     #[key(group = [KeyDef::cache_ttl("PT1H"), KeyDef::CACHE_CAPACITY])] // `cache.*`
//!     pub cache: CacheConfig,
//! }
//! ```
//!
//! Field options: `kind` (a `Kind`), `default` (text, as an environment variable would give
//! it; empty: unset), `env` (one alias or a list), `required`, `sample` (a valid value other
//! than the default, for tests and generated samples), `doc` (instead of the doc comment),
//! `like` (a `KeyDef` whose kind, default and doc the key takes unless given), `group` (the
//! `KeyDef`s of a nested block, named `<field>.<key>`).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{Data, DeriveInput, Expr, Fields, Lit, LitStr, parse_macro_input, spanned::Spanned};

#[proc_macro_derive(Keys, attributes(keys, key))]
pub fn derive_keys(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What one `#[key(...)]` says.
#[derive(Default)]
struct KeyAttr {
    kind: Option<Expr>,
    default: Option<Expr>,
    env: Vec<Expr>,
    required: bool,
    sample: Option<Expr>,
    doc: Option<Expr>,
    like: Option<Expr>,
    group: Option<Vec<Expr>>,
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let spec = spec_path(input)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "Keys derives for structs only",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(input.span(), "Keys needs named fields"));
    };
    let mut keys = Vec::new();
    let mut defaults = Vec::new();
    for field in &fields.named {
        let ident = field.ident.as_ref().expect("named field");
        let key = ident.to_string();
        let Some(attr) = key_attr(field)? else {
            defaults.push(quote! { #ident: ::core::default::Default::default() });
            continue;
        };
        defaults.push(quote! { #ident: crate::config::defaults::field(&#spec, #key) });
        keys.extend(key_defs(field, &key, attr)?);
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #name #ty_generics #where_clause {
            /// The section's own keys, in table order, from the struct's `#[key]` fields.
            pub const KEYS: &'static [crate::config::KeyDef] = &[#(#keys),*];
        }

        /// Every `#[key]` field from its key's default in the table (`KEYS`).
        impl #impl_generics ::core::default::Default for #name #ty_generics #where_clause {
            fn default() -> Self {
                #name { #(#defaults),* }
            }
        }
    })
}

/// `#[keys(spec = PATH)]`: the section's `SectionSpec`.
fn spec_path(input: &DeriveInput) -> syn::Result<Expr> {
    let mut spec = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("keys")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("spec") {
                spec = Some(meta.value()?.parse::<Expr>()?);
                Ok(())
            } else {
                Err(meta.error("expected `spec = <SectionSpec static>`"))
            }
        })?;
    }
    spec.ok_or_else(|| syn::Error::new(input.span(), "missing #[keys(spec = SPEC)]"))
}

fn key_attr(field: &syn::Field) -> syn::Result<Option<KeyAttr>> {
    let mut found = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("key")) {
        let out: &mut KeyAttr = found.get_or_insert_with(KeyAttr::default);
        attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("required") {
                out.required = true;
                return Ok(());
            }
            let value: Expr = meta.value()?.parse()?;
            if path.is_ident("kind") {
                out.kind = Some(value);
            } else if path.is_ident("default") {
                out.default = Some(value);
            } else if path.is_ident("sample") {
                out.sample = Some(value);
            } else if path.is_ident("doc") {
                out.doc = Some(value);
            } else if path.is_ident("like") {
                out.like = Some(value);
            } else if path.is_ident("env") {
                out.env = list(value);
            } else if path.is_ident("group") {
                out.group = Some(list(value));
            } else {
                return Err(
                    meta.error("expected kind, default, env, required, sample, doc, like or group")
                );
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// `[a, b]` as its elements; anything else as a list of one.
fn list(value: Expr) -> Vec<Expr> {
    match value {
        Expr::Array(array) => array.elems.into_iter().collect(),
        other => vec![other],
    }
}

/// The field's doc comment, its lines trimmed and joined by spaces.
fn doc_comment(field: &syn::Field) -> Option<String> {
    let lines: Vec<String> = field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let doc = lines.join(" ").trim().to_string();
    (!doc.is_empty()).then_some(doc)
}

/// The `KeyDef` expressions of one field.
fn key_defs(field: &syn::Field, key: &str, attr: KeyAttr) -> syn::Result<Vec<Tokens>> {
    if let Some(group) = attr.group {
        return Ok(group.iter().map(|e| quote! { #e }).collect());
    }
    let doc = match (&attr.doc, doc_comment(field)) {
        (Some(doc), _) => Some(quote! { #doc }),
        (None, Some(text)) => {
            let text = LitStr::new(&text, field.span());
            Some(quote! { #text })
        }
        (None, None) => None,
    };
    let has_doc = doc.is_some();
    let env = &attr.env;
    let required = attr.required;
    let mut set = vec![quote! { key: #key }];
    if let Some(kind) = &attr.kind {
        set.push(quote! { kind: #kind });
    }
    if let Some(default) = &attr.default {
        set.push(quote! { default: #default });
    }
    if !env.is_empty() {
        set.push(quote! { env_aliases: &[#(#env),*] });
    }
    if required {
        set.push(quote! { required: true });
    }
    if let Some(sample) = &attr.sample {
        set.push(quote! { sample: #sample });
    }
    if let Some(doc) = doc {
        set.push(quote! { doc: #doc });
    }
    if let Some(like) = &attr.like {
        return Ok(vec![quote! { crate::config::KeyDef { #(#set,)* ..#like } }]);
    }
    if attr.kind.is_none() {
        return Err(syn::Error::new(
            field.span(),
            "a key needs `kind = …` (or `like = …`)",
        ));
    }
    if !has_doc {
        return Err(syn::Error::new(
            field.span(),
            "a key needs a doc comment (its meaning in the table)",
        ));
    }
    Ok(vec![
        quote! { crate::config::KeyDef { #(#set,)* ..crate::config::KeyDef::EMPTY } },
    ])
}
