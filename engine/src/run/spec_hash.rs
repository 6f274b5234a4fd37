//! The hash of a workstream's effective spec: what it is asked to do and with what, plus its
//! dependencies' hashes, so a change upstream changes every hash downstream.

use flow_dsl::{EnvSetting, ScopeGlob, Workflow};

/// A 64-bit FNV-1a hasher: small, stable across Rust versions and platforms.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn field(&mut self, name: &str, value: &str) {
        for bytes in [name.as_bytes(), &[0], value.as_bytes(), &[0xff]] {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
}

/// Hashes every workstream of a workflow; the result is indexed like `workflow.workstreams`.
pub fn spec_hashes(workflow: &Workflow) -> Vec<String> {
    let n = workflow.workstreams.len();
    let mut hashes: Vec<Option<String>> = vec![None; n];
    // Dependencies always come first in some order; resolve iteratively.
    let mut pending: Vec<usize> = (0..n).rev().collect();
    while let Some(i) = pending.pop() {
        if hashes[i].is_some() {
            continue;
        }
        let ws = &workflow.workstreams[i];
        if let Some(&missing) = ws.dependencies.iter().find(|&&d| hashes[d].is_none()) {
            pending.push(i);
            pending.push(missing);
            continue;
        }
        let dependencies: Vec<&str> = ws
            .dependencies
            .iter()
            .map(|&d| hashes[d].as_deref().expect("dependencies are hashed first"))
            .collect();
        hashes[i] = Some(spec_hash_with(workflow, i, &dependencies));
    }
    hashes
        .into_iter()
        .map(|h| h.expect("every workstream is hashed"))
        .collect()
}

/// The hash of workstream `index` given its dependencies' hashes (in `depends-on` order): with
/// their recorded hashes, it tells whether the workstream's own spec changed or only theirs.
pub fn spec_hash_with(workflow: &Workflow, index: usize, dependencies: &[&str]) -> String {
    let ws = &workflow.workstreams[index];
    let mut h = Fnv::new();
    h.field("name", &ws.name);
    h.field("task", ws.task.as_deref().unwrap_or(""));
    h.field("script", ws.script.as_deref().unwrap_or(""));
    let agent = workflow.agent_of(ws);
    h.field("agent", &agent.name);
    h.field("command", &agent.command.join("\u{1}"));
    h.field("output", agent.output.name());
    if let Some(api) = &agent.api {
        // Where and how an API agent talks: another API or endpoint is another agent.
        h.field("api", api.kind.name());
        h.field("base-url", api.base_url.as_deref().unwrap_or(""));
    }
    h.field("model", workflow.model_of(ws).map_or("", |m| m.id.as_str()));
    if let Some(role) = workflow.role_of(ws) {
        h.field("role", &role.name);
        h.field("expertise", &role.expertise.join("\u{1}"));
        h.field("instructions", role.instructions.as_deref().unwrap_or(""));
    }
    h.field("owns", &ScopeGlob::join(ws.scope.owns(), "\u{1}"));
    h.field("forbid", &ScopeGlob::join(ws.scope.forbid(), "\u{1}"));
    h.field("context", &ws.context.join("\u{1}"));
    h.field("test", ws.test.as_deref().unwrap_or(""));
    h.field("isolation", ws.isolation.name());
    for env in &ws.env {
        match env {
            EnvSetting::Set { name, value } => h.field("env", &format!("{name}={value}")),
            EnvSetting::Pass { name } => h.field("env-pass", name),
        }
    }
    // What makes its worktree ready; absent from specs without it, so their hashes stay.
    if !ws.setup.is_empty() {
        h.field("setup", &ws.setup.join("\u{1}"));
    }
    if !ws.copy.is_empty() {
        h.field("copy", &ws.copy.join("\u{1}"));
    }
    for dependency in dependencies {
        h.field("dependency", dependency);
    }
    format!("{:016x}", h.0)
}

/// Hashes a file's bytes the same way, for the workflow file's hash.
pub fn text_hash(text: &str) -> String {
    let mut h = Fnv::new();
    h.field("text", text);
    format!("{:016x}", h.0)
}
