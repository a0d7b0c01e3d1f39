//! The crate's modules depend one way (ARCHITECTURE.md, "actors"): a module uses only
//! modules of lower layers, and within a layer only the pairs [`SAME_LAYER`] names. Read
//! from the sources, so a `crate::…` path that points up a layer (or into a cycle) fails
//! here rather than in review. Comments and `#[cfg(test)]` modules are not looked at.

/// Every module of the crate with its layer and source.
const MODULES: &[(&str, usize, &str)] = &[
    ("clock", 0, include_str!("clock.rs")),
    ("crash", 0, include_str!("crash.rs")),
    ("feed", 0, include_str!("feed.rs")),
    ("gateway", 0, include_str!("gateway.rs")),
    ("handles", 0, include_str!("handles.rs")),
    ("sandbox", 0, include_str!("sandbox.rs")),
    ("signature", 0, include_str!("signature.rs")),
    ("config", 1, include_str!("config.rs")),
    ("protocol", 1, include_str!("protocol.rs")),
    ("directory", 2, include_str!("directory.rs")),
    ("shards", 2, include_str!("shards.rs")),
    ("booking", 3, include_str!("booking.rs")),
    ("bookings", 3, include_str!("bookings.rs")),
    ("holds", 3, include_str!("holds.rs")),
    ("open_holds", 3, include_str!("open_holds.rs")),
    ("rearranging", 3, include_str!("rearranging.rs")),
    ("room", 3, include_str!("room.rs")),
    ("payments", 4, include_str!("payments.rs")),
    ("snapshot", 4, include_str!("snapshot.rs")),
    ("supervisor", 4, include_str!("supervisor.rs")),
    ("facade", 5, include_str!("facade.rs")),
    ("recovery", 5, include_str!("recovery.rs")),
    ("startup", 5, include_str!("startup.rs")),
];

/// Uses allowed within one layer (user, used); together they form no cycle.
const SAME_LAYER: &[(&str, &str)] = &[
    ("sandbox", "gateway"),
    ("sandbox", "signature"),
    ("booking", "room"),
    ("booking", "rearranging"),
    ("rearranging", "room"),
    ("bookings", "booking"),
    ("bookings", "room"),
    ("bookings", "rearranging"),
    ("holds", "bookings"),
    ("holds", "room"),
    ("holds", "open_holds"),
    ("room", "open_holds"),
    ("facade", "startup"),
    ("facade", "recovery"),
    ("startup", "recovery"),
];

/// Items the crate root re-exports from the facade's layer.
const ROOT_ITEMS: &[&str] = &[
    "Engine",
    "recover_state",
    "recover_state_with_history",
    "write_snapshot",
];

fn layer_of(name: &str) -> Option<usize> {
    if ROOT_ITEMS.contains(&name) {
        return Some(5);
    }
    MODULES
        .iter()
        .find(|(m, _, _)| *m == name)
        .map(|(_, layer, _)| *layer)
}

/// The names that follow `crate::` in the code of `source` (not its comments or tests).
fn uses(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn modules_depend_one_way() {
    let mut wrong = Vec::new();
    for (module, layer, source) in MODULES {
        for used in uses(source) {
            let Some(used_layer) = layer_of(&used) else {
                wrong.push(format!("{module} uses crate::{used}, which has no layer"));
                continue;
            };
            let same_ok = SAME_LAYER.contains(&(module, used.as_str()));
            if used_layer > *layer || (used_layer == *layer && !same_ok && used != *module) {
                wrong.push(format!(
                    "{module} (layer {layer}) uses crate::{used} (layer {used_layer})"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_check_sees_a_use_that_points_up() {
    assert_eq!(
        uses("use crate::room::Rooms;\n// crate::facade in a comment\nfn f() { crate::shards::current(); }\n#[cfg(test)]\nuse crate::facade;"),
        vec!["room", "shards"]
    );
    assert_eq!(layer_of("facade"), Some(5));
    assert_eq!(layer_of("Engine"), Some(5));
    assert_eq!(layer_of("nowhere"), None);
}

#[test]
fn every_module_has_a_layer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read src") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        let is_test = module == "tests" || module.ends_with("_tests");
        if module != "lib" && !is_test && layer_of(module).is_none() {
            missing.push(module.to_owned());
        }
    }
    assert!(missing.is_empty(), "modules without a layer: {missing:?}");
}

/// The crates an embedder of the engine links (engine, persistence, these actors) declare
/// no HTTP client: the sandbox's callbacks go through a [`crate::CallbackTransport`] the
/// binary supplies. (The HTTP layer has one, for webhooks.)
#[test]
fn the_embeddable_crates_pull_no_http_client() {
    const MANIFESTS: &[(&str, &str)] = &[
        ("engine", include_str!("../../engine/Cargo.toml")),
        ("persistence", include_str!("../../persistence/Cargo.toml")),
        ("actors", include_str!("../Cargo.toml")),
    ];
    for (name, manifest) in MANIFESTS {
        // The names in `[dependencies]` (`name = ...` or `name.workspace = true`).
        let mut section = "";
        let mut dependencies = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
                let key = line.split(['=', '.']).next().unwrap_or("").trim();
                dependencies.push(key);
            }
        }
        assert!(dependencies.contains(&"serde"), "{name}: {dependencies:?}");
        for client in ["reqwest", "ureq", "isahc", "surf", "attohttpc"] {
            assert!(
                !dependencies.contains(&client),
                "{name} depends on {client}"
            );
        }
    }
}
