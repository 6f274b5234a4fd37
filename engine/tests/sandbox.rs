//! Runs real children confined both ways, by [`flow_engine::sandbox::confine`] (a hook between
//! `fork` and `exec`) and by [`flow_engine::sandbox::wrap`] (the `flow-confine` wrapper): writes inside and outside the
//! allowed places, tricks a hostile agent would try (a grandchild, a symbolic or hard link, a
//! move out), git committing in a linked worktree with the computed writable set while the
//! shared git folder stays closed, TCP under each [`Network`], and signals and abstract unix
//! sockets across the sandbox's edge.
//!
//! Each test first checks what the kernel offers ([`support`]) and returns early, printing
//! why, when it lacks what the test needs. No test measures time: each asserts on the lines a
//! child printed, its exit status, and the files left behind.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use flow_engine::sandbox::{
    GitObjects, GitSetError, Network, Policy, SandboxError, Support, Wrapper, Writable, confine, git_writable, support,
    wrap,
};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// How long a child that should end by itself may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// Tells whether the kernel has what `needs` asks of it, printing why not when it has not.
fn kernel_has(needs: impl Fn(&Support) -> bool, what: &str) -> bool {
    let support = support();
    let has = needs(&support);
    if !has {
        println!("skipped: the kernel lacks {what} ({support})");
    }
    has
}

/// Says which way a test confines its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// [`confine`]: the hook between `fork` and `exec`.
    Hook,
    /// [`wrap`]: the `flow-confine` wrapper.
    Wrapper,
}

/// Both ways, for tests to run each case with each.
const BOTH: [How; 2] = [How::Hook, How::Wrapper];

/// Returns a command that runs `program` confined by `policy`, the `how` way, asserting that
/// all of the policy is enforced.
fn confined(how: How, program: &str, policy: &Policy) -> Command {
    let (command, confinement) = match how {
        How::Hook => {
            let mut command = Command::new(program);
            let confinement = confine(&mut command, policy).expect("the policy can be applied");
            (command, confinement)
        }
        How::Wrapper => {
            let wrapper = Wrapper {
                program: env!("CARGO_BIN_EXE_flow-confine").into(),
                leading: Vec::new(),
            };
            wrap(&wrapper, Path::new(program), policy).expect("the policy can be applied")
        }
    };
    assert!(confinement.is_full(), "{confinement}");
    command
}

/// What a confined child did: its status and its stdout and stderr lines.
struct Ran {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

/// Runs `script` with `interpreter -c`, confined by `policy` the `how` way, in `cwd`, to its
/// end.
async fn run_in(how: How, interpreter: &str, policy: &Policy, cwd: &Path, script: &str) -> Ran {
    let mut command = confined(how, interpreter, policy);
    command
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.com")
        .env("GIT_COMMITTER_NAME", "agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.com")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the child ends")
        .expect("the child starts");
    Ran {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `script` with `sh -c`, confined by `policy` the `how` way, in `cwd`.
async fn run(how: How, policy: &Policy, cwd: &Path, script: &str) -> Ran {
    run_in(how, "sh", policy, cwd, script).await
}

/// A shell function that runs its second argument and prints `<name>: written` or
/// `<name>: refused`, so a script's output lists the outcome of each attempt.
const TRY: &str = r#"try() { if sh -c "$2" >/dev/null 2>&1; then echo "$1: written"; else echo "$1: refused"; fi; }
"#;

/// A temporary folder with an agent's worktree and places around it it must not write.
struct Places {
    _root: TempDir,
    worktree: PathBuf,
    sibling: PathBuf,
    home_file: PathBuf,
    elsewhere: PathBuf,
}

impl Places {
    fn new() -> Places {
        let root = TempDir::new().expect("a temporary folder");
        let worktree = root.path().join("worktree");
        let sibling = root.path().join("sibling-worktree");
        let home = root.path().join("home");
        let elsewhere = root.path().join("elsewhere");
        for folder in [&worktree, &sibling, &home, &elsewhere] {
            std::fs::create_dir(folder).expect("a folder");
        }
        let home_file = home.join(".bashrc");
        std::fs::write(&home_file, "the user's\n").expect("a file");
        std::fs::write(elsewhere.join("file"), "someone else's\n").expect("a file");
        std::fs::write(sibling.join("file"), "a sibling's\n").expect("a file");
        Places {
            _root: root,
            worktree,
            sibling,
            home_file,
            elsewhere,
        }
    }

    fn policy(&self) -> Policy {
        Policy::new().allow(Writable::tree(&self.worktree))
    }
}

#[tokio::test]
async fn a_child_writes_only_beneath_its_places() {
    if !kernel_has(|s| s.filesystem && s.abi >= 3, "Landlock with truncation (ABI 3)") {
        return;
    }
    for how in BOTH {
        let places = Places::new();
        let (worktree, sibling, home_file, elsewhere) = (
            places.worktree.display(),
            places.sibling.display(),
            places.home_file.display(),
            places.elsewhere.display(),
        );
        let script = format!(
            "{TRY}\
         try inside 'echo work > {worktree}/new && mkdir {worktree}/sub && echo more > {worktree}/sub/file'
         try 'inside, moved between folders' 'mv {worktree}/new {worktree}/sub/moved'
         try sibling 'echo x > {sibling}/file'
         try 'new file in sibling' 'echo x > {sibling}/new'
         try home 'echo x >> {home_file}'
         try elsewhere 'echo x > {elsewhere}/file'
         try 'truncate elsewhere' 'truncate -s 0 {elsewhere}/file'
         try 'remove elsewhere' 'rm {elsewhere}/file'
         try 'the folder above' 'echo x > {worktree}/../new'
         try 'move out' 'mv {worktree}/sub/moved {elsewhere}/moved'
         try 'symbolic link out' 'ln -s {elsewhere}/file {worktree}/link && echo x > {worktree}/link'
         try 'hard link in' 'ln {elsewhere}/file {worktree}/hard'
         try 'a grandchild' '(echo x > {sibling}/grandchild) & wait $!'
         try 'rename the worktree' 'mv {worktree} {worktree}-renamed'
         try /dev/null 'echo x > /dev/null && cat /dev/zero | head -c 1 > /dev/null'
         try /dev/shm 'echo x > /dev/shm/flow-sandbox-test-$$ && rm /dev/shm/flow-sandbox-test-$$'"
        );
        let ran = run(how, &places.policy(), &places.worktree, &script).await;
        assert_eq!(
            ran.stdout,
            [
                "inside: written",
                "inside, moved between folders: written",
                "sibling: refused",
                "new file in sibling: refused",
                "home: refused",
                "elsewhere: refused",
                "truncate elsewhere: refused",
                "remove elsewhere: refused",
                "the folder above: refused",
                "move out: refused",
                "symbolic link out: refused",
                "hard link in: refused",
                "a grandchild: refused",
                "rename the worktree: refused",
                "/dev/null: written",
                "/dev/shm: written",
            ],
            "stderr: {}",
            ran.stderr
        );
        assert!(ran.status.success());
        assert_eq!(std::fs::read_to_string(&places.home_file).unwrap(), "the user's\n");
        assert_eq!(
            std::fs::read_to_string(places.elsewhere.join("file")).unwrap(),
            "someone else's\n"
        );
        assert_eq!(
            std::fs::read_to_string(places.sibling.join("file")).unwrap(),
            "a sibling's\n"
        );
        assert!(!places.sibling.join("new").exists() && !places.sibling.join("grandchild").exists());
        assert_eq!(
            std::fs::read_to_string(places.worktree.join("sub/moved")).unwrap(),
            "work\n"
        );
    }
}

#[tokio::test]
async fn single_files_and_entries_allow_only_their_writes() {
    if !kernel_has(|s| s.filesystem && s.abi >= 3, "Landlock with truncation (ABI 3)") {
        return;
    }
    for how in BOTH {
        let places = Places::new();
        let policy = places
            .policy()
            .allow(Writable::file(&places.home_file))
            .allow(Writable::entries(&places.elsewhere));
        let (home, elsewhere) = (places.home_file.display(), places.elsewhere.display());
        let script = format!(
            "{TRY}\
         try 'the file' 'echo more >> {home}'
         try 'beside the file' 'echo x > {home}.new'
         try 'replace the file' 'echo x > {home}.new && mv {home}.new {home}'
         try 'entries: a new file, renamed' 'echo x > {elsewhere}/a.lock && mv {elsewhere}/a.lock {elsewhere}/a'
         try 'entries: a folder' 'mkdir {elsewhere}/sub'
         try 'entries: a symbolic link' 'ln -s /etc {elsewhere}/link'
         try 'entries: a named pipe' 'mkfifo {elsewhere}/pipe'
         try 'entries: remove a folder' 'rmdir {elsewhere}/sub'"
        );
        let ran = run(how, &policy, &places.worktree, &script).await;
        assert_eq!(
            ran.stdout,
            [
                "the file: written",
                "beside the file: refused",
                "replace the file: refused",
                "entries: a new file, renamed: written",
                "entries: a folder: written",
                "entries: a symbolic link: refused",
                "entries: a named pipe: refused",
                "entries: remove a folder: refused",
            ],
            "stderr: {}",
            ran.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&places.home_file).unwrap(),
            "the user's\nmore\n"
        );
    }
}

#[tokio::test]
async fn a_missing_place_is_an_error_naming_it() {
    if !kernel_has(|s| s.filesystem, "Landlock") {
        return;
    }
    for how in BOTH {
        let places = Places::new();
        let missing = places.worktree.join("not-there");
        let policy = Policy::new().allow(Writable::tree(&missing));
        let error = match how {
            How::Hook => confine(&mut Command::new("true"), &policy).unwrap_err(),
            How::Wrapper => {
                let wrapper = Wrapper::this_program();
                wrap(&wrapper, Path::new("true"), &policy).unwrap_err()
            }
        };
        assert!(
            matches!(&error, SandboxError::Path { path, .. } if *path == missing),
            "{error}"
        );
    }
}

/// Runs `git` in `dir`, unconfined, with a hermetic configuration, returning its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("the git CLI runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn an_agent_commits_on_its_branch_and_nothing_else_of_the_shared_git_folder() {
    if !kernel_has(|s| s.filesystem && s.abi >= 3, "Landlock with truncation (ABI 3)") {
        return;
    }
    for how in BOTH {
        let root = TempDir::new().expect("a temporary folder");
        let repository = root.path().join("repository");
        std::fs::create_dir(&repository).unwrap();
        git(&repository, &["init", "-q"]);
        std::fs::write(repository.join("file"), "one\n").unwrap();
        git(&repository, &["add", "file"]);
        git(&repository, &["commit", "-qm", "one"]);
        let start = git(&repository, &["rev-parse", "HEAD"]);
        git(&repository, &["branch", "flow/b"]);
        let worktree = root.path().join("worktree-a");
        git(
            &repository,
            &["worktree", "add", "-q", "-b", "flow/a", worktree.to_str().unwrap()],
        );
        let absolute = |path: String| {
            let path = PathBuf::from(path);
            if path.is_absolute() { path } else { worktree.join(path) }
        };
        let common = absolute(git(&worktree, &["rev-parse", "--git-common-dir"]));
        let private = absolute(git(&worktree, &["rev-parse", "--git-dir"]));
        let config_before = std::fs::read(common.join("config")).unwrap();

        let mut policy = Policy::new().allow(Writable::tree(&worktree));
        policy
            .writable
            .extend(git_writable(&common, &private, "flow/a").expect("a loose-ref repository"));
        let (objects, own) = GitObjects::make(&common, &root.path().join("own-objects")).expect("its object folder");
        policy.writable.push(own);
        let loose_before = loose_objects(&common);
        let common_text = common.display();
        let exports: String = objects
            .env()
            .iter()
            .map(|(name, value)| format!("export {name}='{}'\n", value.display()))
            .collect();
        let script = format!(
            "{TRY}{exports}\
         echo two > file && git add file && git commit -qm two && echo committed
         try 'an object of the store' 'rm -f {common_text}/objects/??/*'
         try prune 'git prune --expire=now && test -z \"$(ls {common_text}/objects/?? 2>/dev/null)\"'
         try config 'echo \"[core] fsmonitor = touch /tmp/owned\" >> {common_text}/config'
         try hook 'echo \"#!/bin/sh\" > {common_text}/hooks/post-checkout && chmod +x {common_text}/hooks/post-checkout'
         try 'a new branch' 'git update-ref refs/heads/elsewhere HEAD'
         try 'the main branch' 'git update-ref refs/heads/main HEAD'
         try 'a tag' 'git tag v1'
         try packed-refs 'echo x > {common_text}/packed-refs'
         try 'info/exclude' 'echo x >> {common_text}/info/exclude'
         try alternates 'echo /tmp > {common_text}/objects/info/alternates'
         try 'a pack' 'echo x > {common_text}/objects/pack/pack-0.pack'"
        );
        let ran = run(how, &policy, &worktree, &script).await;
        assert_eq!(
            ran.stdout,
            [
                "committed",
                "an object of the store: refused",
                "prune: refused",
                "config: refused",
                "hook: refused",
                "a new branch: refused",
                "the main branch: refused",
                "a tag: refused",
                "packed-refs: refused",
                "info/exclude: refused",
                "alternates: refused",
                "a pack: refused",
            ],
            "stderr: {}",
            ran.stderr
        );
        // The store lost nothing; the agent's objects join it once it is gone.
        assert_eq!(loose_objects(&common), loose_before);
        let adopted = flow_engine::git::Git::discover(&repository)
            .expect("the repository")
            .adopt_objects(&objects.own)
            .expect("its objects are taken in");
        assert!(adopted.taken >= 3 && adopted.refused.is_empty(), "{adopted:?}");
        // The commit landed on the branch, seen from the user's checkout; nothing else moved.
        assert_eq!(
            git(&repository, &["log", "--format=%s", "flow/a"])
                .lines()
                .collect::<Vec<_>>(),
            ["two", "one"]
        );
        assert_eq!(git(&repository, &["rev-parse", "main"]), start);
        assert_eq!(git(&repository, &["rev-parse", "flow/b"]), start);
        assert_eq!(git(&repository, &["tag"]), "");
        assert_eq!(std::fs::read(common.join("config")).unwrap(), config_before);
        assert!(!common.join("hooks/post-checkout").exists());
        assert!(!common.join("refs/heads/elsewhere").exists());
        git(&repository, &["fsck", "--no-progress"]);
    }
}

/// Every loose object of a shared store, by name.
fn loose_objects(common: &Path) -> Vec<String> {
    let mut names = vec![];
    for fan_out in std::fs::read_dir(common.join("objects")).unwrap().flatten() {
        let fan_name = fan_out.file_name().to_string_lossy().into_owned();
        if fan_name.len() != 2 {
            continue;
        }
        for object in std::fs::read_dir(fan_out.path()).unwrap().flatten() {
            names.push(format!("{fan_name}/{}", object.file_name().to_string_lossy()));
        }
    }
    names.sort();
    names
}

#[test]
fn the_git_set_refuses_branches_that_leave_the_refs_folder() {
    let root = TempDir::new().expect("a temporary folder");
    for branch in ["../../config", "flow/../../x", "flow//a", "/flow", "flow/."] {
        assert!(
            matches!(
                git_writable(root.path(), &root.path().join("worktrees/a"), branch),
                Err(GitSetError::Branch(_))
            ),
            "{branch}"
        );
    }
    std::fs::create_dir(root.path().join("reftable")).unwrap();
    assert!(matches!(
        git_writable(root.path(), &root.path().join("worktrees/a"), "flow/a"),
        Err(GitSetError::Reftable(_))
    ));
}

/// Starts a TCP listener on 127.0.0.1 and returns it with its port.
fn listener() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let port = listener.local_addr().expect("a bound address").port();
    (listener, port)
}

#[tokio::test]
async fn tcp_connections_follow_the_network_policy() {
    if !kernel_has(|s| s.network, "Landlock network rules (ABI 4)") {
        return;
    }
    for how in BOTH {
        let places = Places::new();
        let (_listener, port) = listener();
        let (_other, other_port) = listener();
        let script = format!(
        "for port in {port} {other_port}; do
           if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo \"$port: connected\"; else echo \"$port: refused\"; fi
         done"
    );
        let cases = [
            (Network::Any, ["connected", "connected"]),
            (Network::Off, ["refused", "refused"]),
            (Network::Ports(vec![port]), ["connected", "refused"]),
        ];
        for (network, expected) in cases {
            let policy = places.policy().network(network.clone());
            let ran = run_in(how, "bash", &policy, &places.worktree, &script).await;
            assert_eq!(
                ran.stdout,
                [
                    format!("{port}: {}", expected[0]),
                    format!("{other_port}: {}", expected[1])
                ],
                "{network:?}, stderr: {}",
                ran.stderr
            );
        }
    }
}

#[tokio::test]
async fn a_confined_child_cannot_signal_outside_but_is_stopped_from_outside() {
    if !kernel_has(|s| s.scopes, "Landlock scopes (ABI 6)") {
        return;
    }
    for how in BOTH {
        let places = Places::new();
        // SIGURG is ignored by default: were the signal let through, this test would not die of it.
        let script = format!(
            "if kill -s URG {} 2>/dev/null; then echo 'outside: signalled'; else echo 'outside: refused'; fi
         sleep 600 >/dev/null & if kill $! 2>/dev/null; then echo 'own child: signalled'; fi
         trap 'echo interrupted; exit 3' INT
         echo ready
         sleep 600 >/dev/null & wait",
            std::process::id()
        );
        let mut command = confined(how, "sh", &places.policy());
        command
            .arg("-c")
            .arg(&script)
            .current_dir(&places.worktree)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the child starts");
        let pid = child.id().expect("a running child");
        let mut lines = BufReader::new(child.stdout.take().expect("a piped stdout")).lines();
        let mut seen = Vec::new();
        while let Some(line) = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the child writes")
            .expect("a readable pipe")
        {
            let ready = line == "ready";
            seen.push(line);
            if ready {
                let group = rustix::process::Pid::from_raw(pid as i32).expect("a positive pid");
                rustix::process::kill_process_group(group, rustix::process::Signal::INT).expect("the group exists");
            }
        }
        let status = tokio::time::timeout(PATIENCE, child.wait())
            .await
            .expect("the child ends")
            .expect("the child is waited for");
        assert_eq!(
            seen,
            ["outside: refused", "own child: signalled", "ready", "interrupted"]
        );
        assert_eq!(status.code(), Some(3));
        // The background `sleep` ignored SIGINT (as background jobs of `sh` do): end it.
        let group = rustix::process::Pid::from_raw(pid as i32).expect("a positive pid");
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);

        // SIGKILL from outside reaches it too.
        let mut command = confined(how, "sleep", &places.policy());
        command.arg("600").kill_on_drop(true);
        let mut child = command.spawn().expect("the child starts");
        child.start_kill().expect("the child can be killed");
        let status = tokio::time::timeout(PATIENCE, child.wait()).await.unwrap().unwrap();
        assert_eq!(status.signal(), Some(9));
    }
}

#[tokio::test]
async fn a_confined_child_cannot_reach_an_outside_abstract_socket() {
    if !kernel_has(|s| s.scopes, "Landlock scopes (ABI 6)") {
        return;
    }
    let Ok(python) = which::which("python3") else {
        println!("skipped: no python3 to connect to an abstract socket with");
        return;
    };
    use std::os::linux::net::SocketAddrExt;
    let name = format!("flow-sandbox-test-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).expect("an abstract name");
    let _listener = std::os::unix::net::UnixListener::bind_addr(&address).expect("an abstract listener");
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         try:\n    s.connect('\\0{name}')\n    print('connected')\n\
         except OSError as e:\n    print('refused')\n"
    );
    for how in BOTH {
        let places = Places::new();
        let ran = run_in(
            how,
            python.to_str().unwrap(),
            &places.policy(),
            &places.worktree,
            &script,
        )
        .await;
        assert_eq!(ran.stdout, ["refused"], "{how:?}, stderr: {}", ran.stderr);
    }
    // The same script, unconfined, connects: the refusal is the sandbox's.
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "connected");
}

/// The variable that makes [`terminal_helper`] run: it is only meant to run under `script`.
const TERMINAL_HELPER: &str = "FLOW_SANDBOX_TERMINAL_HELPER";

#[tokio::test]
async fn a_confined_child_has_no_controlling_terminal() {
    if !kernel_has(|s| s.filesystem, "Landlock") {
        return;
    }
    let Ok(script) = which::which("script") else {
        println!("skipped: no `script` to give the test a terminal");
        return;
    };
    // This test binary runs `terminal_helper` under `script`, which gives it a terminal of its
    // own as its controlling terminal; the helper starts a confined child and reports.
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let inner = format!(
        "{} --exact sandbox::terminal_helper --ignored --nocapture --test-threads=1",
        test_binary.display()
    );
    let output = std::process::Command::new(script)
        .args(["-qec", &inner, "/dev/null"])
        .env(TERMINAL_HELPER, "1")
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert!(text.contains("helper: has a terminal"), "{text}");
    assert!(text.contains("Hook confined: no terminal"), "{text}");
    assert!(text.contains("Wrapper confined: no terminal"), "{text}");
    assert!(!text.contains("confined: terminal opened"), "{text}");
}

#[tokio::test]
#[ignore = "run by a_confined_child_has_no_controlling_terminal, under a terminal"]
async fn terminal_helper() {
    if std::env::var_os(TERMINAL_HELPER).is_none() {
        return;
    }
    if std::fs::OpenOptions::new().write(true).open("/dev/tty").is_ok() {
        println!("helper: has a terminal");
    }
    for how in BOTH {
        let places = Places::new();
        let ran = run(
            how,
            &places.policy(),
            &places.worktree,
            "if (exec 3<>/dev/tty) 2>/dev/null; then echo 'confined: terminal opened'; else echo 'confined: no terminal'; fi",
        )
        .await;
        for line in ran.stdout {
            println!("{how:?} {line}");
        }
    }
}

#[tokio::test]
async fn a_wrapper_that_cannot_confine_never_starts_the_agent() {
    if !kernel_has(|s| s.filesystem, "Landlock") {
        return;
    }
    let places = Places::new();
    let vanishing = places.worktree.join("vanishing");
    std::fs::create_dir(&vanishing).unwrap();
    let marker = places.worktree.join("ran");
    let mut command = confined(How::Wrapper, "sh", &Policy::new().allow(Writable::tree(&vanishing)));
    // The place goes away between the parent's checks and the wrapper's start.
    std::fs::remove_dir(&vanishing).unwrap();
    let output = tokio::time::timeout(
        PATIENCE,
        command.arg("-c").arg(format!("touch {}", marker.display())).output(),
    )
    .await
    .expect("the wrapper ends")
    .expect("the wrapper starts");
    assert_eq!(output.status.code(), Some(flow_engine::sandbox::WRAPPER_FAILED));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("flow sandbox: cannot allow writes to"), "{stderr}");
    assert!(!marker.exists());
}
