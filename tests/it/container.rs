//! The Dockerfile and compose.yaml, checked against the repository without a container
//! engine (none runs here): every COPY source exists, the binary copied out of the build
//! stage is the one cargo builds there, the final stage runs as a non-root user it creates,
//! the HEALTHCHECK asks /live on the probe address of the config the image ships, and
//! compose's mounts and origins match its config.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Dockerfile instructions with continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = line.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let (op, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

/// The stages: (FROM line, its instructions).
fn stages(all: &[(String, String)]) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (op, rest) in all {
        if op == "FROM" {
            out.push((rest.clone(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push((op.clone(), rest.clone()));
        }
    }
    out
}

#[test]
fn dockerfile_matches_the_repository() {
    let all = instructions(&read("Dockerfile"));
    let stages = stages(&all);
    assert_eq!(
        stages.len(),
        2,
        "a build stage and a runtime stage: {stages:?}"
    );
    let (build_from, build) = &stages[0];
    let (run_from, run) = &stages[1];
    assert!(
        build_from.starts_with("rust:") && build_from.ends_with(" AS build"),
        "{build_from}"
    );
    assert!(
        run_from.starts_with("debian:") && run_from.contains("-slim"),
        "{run_from}"
    );

    // The build stage: its COPY sources exist here, and it builds the binary the runtime
    // stage copies out.
    let workdir = build
        .iter()
        .find(|(op, _)| op == "WORKDIR")
        .map(|(_, d)| d.clone())
        .expect("a WORKDIR in the build stage");
    let mut copied_here = Vec::new();
    for (op, rest) in build.iter().chain(run.iter()) {
        if op != "COPY" || rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                Path::new(ROOT).join(src).exists(),
                "COPY source {src} is not in the repository"
            );
            copied_here.push(src.to_string());
        }
    }
    for needed in ["Cargo.toml", "Cargo.lock", "src", "benches", "examples"] {
        assert!(
            copied_here.iter().any(|c| c == needed),
            "the build needs {needed} copied"
        );
    }
    let build_cmd = build
        .iter()
        .find(|(op, r)| op == "RUN" && r.contains("cargo build"))
        .map(|(_, r)| r.clone())
        .expect("cargo build in the build stage");
    assert!(
        build_cmd.contains("--release") && build_cmd.contains("--bin strait"),
        "{build_cmd}"
    );
    let manifest = read("Cargo.toml");
    assert!(
        manifest.contains("[[bin]]\nname = \"strait\""),
        "the binary is called strait"
    );
    let binary = format!("{workdir}/target/release/strait");
    let copy_out = run
        .iter()
        .find(|(op, r)| op == "COPY" && r.starts_with("--from=build"))
        .map(|(_, r)| r.clone())
        .expect("the binary copied from the build stage");
    let parts: Vec<&str> = copy_out.split_whitespace().collect();
    assert_eq!(parts.get(1).copied(), Some(binary.as_str()), "{copy_out}");
    let installed = parts.get(2).copied().unwrap_or_default().to_string();
    let entry = run
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, r)| r.clone())
        .expect("an ENTRYPOINT");
    assert!(
        entry.contains(&format!("\"{installed}\"")),
        "ENTRYPOINT {entry} runs {installed}"
    );

    // The runtime stage runs as a non-root user it creates.
    let user = run
        .iter()
        .rfind(|(op, _)| op == "USER")
        .map(|(_, u)| u.clone())
        .expect("a USER");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(
        run.iter()
            .any(|(op, r)| op == "RUN" && r.contains("useradd") && r.contains(&format!(" {user}"))),
        "the image creates the user {user}"
    );

    // Config and certificates are volumes; STRAIT_CONFIG names the config copied in.
    let volumes = run
        .iter()
        .find(|(op, _)| op == "VOLUME")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        volumes.contains("\"/etc/strait\"") && volumes.contains("\"/etc/strait/tls\""),
        "{volumes}"
    );
    let config_copy = run
        .iter()
        .find(|(op, r)| op == "COPY" && r.ends_with(" /etc/strait/strait.yaml"))
        .map(|(_, r)| r.split_whitespace().next().unwrap_or_default().to_string())
        .expect("a config copied to /etc/strait/strait.yaml");
    assert!(
        run.iter()
            .any(|(op, r)| op == "ENV" && r == "STRAIT_CONFIG=/etc/strait/strait.yaml"),
        "STRAIT_CONFIG points at the shipped config"
    );

    // The HEALTHCHECK asks /live where the shipped config's probe listens.
    let health = run
        .iter()
        .find(|(op, _)| op == "HEALTHCHECK")
        .map(|(_, h)| h.clone())
        .expect("a HEALTHCHECK");
    let config = read(&config_copy);
    let probe_port = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("probe: { addr: 0.0.0.0:"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the shipped config has a probe on all interfaces");
    assert!(
        health.contains(&format!("127.0.0.1:{probe_port}/live")),
        "{health}"
    );
    assert!(
        run.iter().any(|(op, r)| op == "RUN" && r.contains("curl")),
        "the runtime stage installs the curl the HEALTHCHECK runs"
    );
}

/// The config the image ships is valid (`strait -t`).
#[test]
fn the_shipped_container_config_is_valid() {
    let file = PathBuf::from(ROOT).join("conf/container/strait.yaml");
    let check = crate::support::Strait::check_file(&file, Path::new(ROOT));
    assert_eq!(check.code, Some(0), "{}", check.describe());
}

#[test]
fn compose_mounts_exist_and_name_the_origins_of_its_config() {
    let compose = read("compose.yaml");
    assert!(
        compose.contains("build: ."),
        "strait is built from this repository"
    );
    for line in compose.lines() {
        let line = line.trim().trim_start_matches("- ");
        if let Some(src) = line.strip_prefix("./") {
            let src = src.split(':').next().unwrap_or_default();
            assert!(
                Path::new(ROOT).join(src).exists(),
                "compose mounts {src}, which is missing"
            );
        }
    }
    let config = read("conf/container/compose.yaml");
    for origin in ["origin-a", "origin-b"] {
        assert!(
            compose.contains(&format!("  {origin}:")),
            "compose defines {origin}"
        );
        assert!(
            config.contains(&format!("http://{origin}:")),
            "the config proxies to {origin}"
        );
    }
    // It is strait's config in every way but the origins' names, which only compose resolves.
    let local = config
        .replace("origin-a", "127.0.0.1")
        .replace("origin-b", "127.0.0.1");
    let dir = crate::support::strait::temp_dir("compose-config");
    let file = dir.join("compose.yaml");
    std::fs::write(&file, local).expect("write");
    let check = crate::support::Strait::check_file(&file, &dir);
    assert_eq!(check.code, Some(0), "{}", check.describe());
    let _ = std::fs::remove_dir_all(&dir);
}
