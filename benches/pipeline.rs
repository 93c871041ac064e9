//! Benchmarks of the hot paths (run: `cargo bench --bench pipeline`). A plain binary: each case
//! runs a few times and prints the median, so the README can quote it with the method.

use std::time::{Duration, Instant};

use opencti_connectors::connectors::BuildContext;
use opencti_connectors::connectors::ipsum::{CHUNK_IPS, IpsumConfig, IpsumConnector, SPEC, parse};
use opencti_connectors::opencti::split::split;
use opencti_connectors::stix::ids;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn bench(name: &str, iterations: usize, mut f: impl FnMut() -> usize) {
    let mut runs = Vec::with_capacity(iterations);
    let mut items = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        items = std::hint::black_box(f());
        runs.push(start.elapsed());
    }
    let m = median(runs);
    let rate = items as f64 / m.as_secs_f64();
    println!(
        "{name:<48} median {:>9.1} ms  ({items} items, {rate:>12.0} items/s)",
        m.as_secs_f64() * 1e3
    );
}

fn main() {
    let feed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/ipsum/levels/1.txt"
    ))
    .expect("the IPsum level-1 fixture (../shared/fixtures/ipsum/levels/1.txt)");
    let section = IpsumConfig::default();
    let settings = section.connector.resolve_unregistered(&SPEC);
    let connector = IpsumConnector::new(&section, &BuildContext::new(&settings, None)).unwrap();
    let now = "2026-01-01T00:00:00.000Z";

    bench("ipsum: parse levels/1.txt (lines)", 7, || {
        parse(&feed).ips.len()
    });
    let ips = parse(&feed).ips;
    bench("ipsum: build observable+indicator+rel (IPs)", 5, || {
        ips.iter()
            .map(|ip| connector.objects_for(ip, now).len())
            .sum::<usize>()
            / 3
    });
    bench(
        "ipsum: build + split in 2,000-IP chunks (objects)",
        5,
        || {
            ips.chunks(CHUNK_IPS)
                .map(|chunk| {
                    let objects: Vec<_> = chunk
                        .iter()
                        .flat_map(|ip| connector.objects_for(ip, now))
                        .collect();
                    split(objects, true).len()
                })
                .sum()
        },
    );
    bench(
        "ipsum: prepared chunks + split_prepared, as a run (objects)",
        5,
        || {
            use opencti_connectors::opencti::prepared::{Split, split_prepared};
            ips.chunks(CHUNK_IPS)
                .map(
                    |chunk| match split_prepared(connector.chunk(chunk, now), true) {
                        Split::Prepared(parts) => parts.len(),
                        Split::Generic(parts) => parts.len(),
                    },
                )
                .sum()
        },
    );
    bench("ids: ipv4-addr deterministic ids (ids)", 7, || {
        ips.iter()
            .filter(|ip| !ids::value_observable_id("ipv4-addr", &ip.ip.to_string()).is_empty())
            .count()
    });
}
