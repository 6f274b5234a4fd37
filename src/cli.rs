//! The command line: clap types only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run a team of AI coding agents in parallel on one git repository.
///
/// A workflow file (`parallel.kdl`) declares workstreams: a task, the files it owns, the
/// agent and model that run it, and what it depends on. flow checks and plans the file,
/// gives each workstream its own git worktree and branch, launches the agents as their
/// dependencies allow, and merges the branches into an integration branch in dependency
/// order, testing the merged tree.
///
/// FILE defaults to the nearest `parallel.kdl`, from the current folder up to the
/// repository's root. `flow help workflow` is the language reference; `flow help exit-codes`
/// says what each exit status means.
#[derive(Debug, Parser)]
#[command(
    name = "flow",
    version,
    propagate_version = true,
    max_term_width = 100,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Run as if flow was started in this folder (like `git -C`).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// When to colour the output: `auto` colours a terminal unless NO_COLOR is set (or
    /// CLICOLOR_FORCE asks for colour anyway).
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// Say only errors and the result: no progress, warnings, notes or hints.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more where there is more: every line the agents print in the progress.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set; always with CLICOLOR_FORCE.
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(InitArgs),
    Check(CheckArgs),
    Plan(PlanArgs),
    Graph(GraphArgs),
    Run(RunArgs),
    Demo(DemoArgs),
    Prepare(PrepareArgs),
    Context(ContextArgs),
    Merge(MergeArgs),
    #[command(override_usage = "flow land [OPTIONS] [FILE|RUN]")]
    Land(LandArgs),
    Export(ExportArgs),
    Conflicts(ConflictsArgs),
    #[command(override_usage = "flow sync [OPTIONS] [FILE] [WORKSTREAM]...")]
    Sync(SyncArgs),
    #[command(override_usage = "flow resolve [OPTIONS] [FILE] <WORKSTREAM>")]
    Resolve(ResolveArgs),
    #[command(override_usage = "flow open [OPTIONS] [FILE] <WORKSTREAM>")]
    Open(OpenArgs),
    #[command(override_usage = "flow done [OPTIONS] [FILE] <WORKSTREAM>")]
    Done(DoneArgs),
    Clean(CleanArgs),
    Resume(ResumeArgs),
    Status(StatusArgs),
    Logs(LogsArgs),
    Watch(WatchArgs),
    Retry(RetryArgs),
    Tell(TellArgs),
    Report(ReportArgs),
    Runs(RunsArgs),
    Usage(UsageArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
    Help(HelpArgs),
    #[command(hide = true)]
    Hook(HookArgs),
}

/// Check a workflow file and report every problem in it.
///
/// Exit status: 0 when the file is valid, 1 when it has warnings and --deny-warnings is
/// given, 2 when it is invalid.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The workflow file(s) (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print the problems as JSON lines on standard output, one object per problem and a
    /// summary last (see the README).
    #[arg(long)]
    pub json: bool,
}

/// Show what a run would do, without touching anything: waves, critical path, merge order,
/// predicted overlaps.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print the plan as JSON on standard output (the shape is versioned; see the README).
    #[arg(long)]
    pub json: bool,
}

/// Draw the dependency graph, with waves and merge order.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The output language.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Colour each workstream by its state in this run (`latest` for the latest), with a
    /// legend; the workflow is the run's own unless FILE is given.
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Write the graph to this file instead of printing it: `.svg` or `.png` is drawn with
    /// graphviz's `dot` (which must be installed), anything else gets the text.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A graph language.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (`flow graph | dot -Tsvg > plan.svg`).
    Dot,
    /// Mermaid flowchart (renders in GitHub markdown).
    Mermaid,
}

/// Run a workflow: worktrees, agents, checks and merges, with live progress.
///
/// Each workstream gets its own worktree and branch; its agent starts as soon as its
/// dependencies have merged and a slot is free. Finished branches are checked (scope,
/// test) and merged one at a time into the integration branch, where `verify` runs.
/// Everything is recorded under `.flow/runs/`, so `flow resume` can continue.
///
/// Exit status: 0 when every workstream merged (or finished), 1 when anything failed,
/// 2 when the workflow is invalid or the run could not start.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Run only these workstreams, with everything they depend on.
    #[arg(long, num_args = 1.., value_name = "WORKSTREAM", conflicts_with = "resume")]
    pub only: Vec<String>,
    /// Continue the latest run of this workflow instead of starting a new one (as `flow resume`).
    #[arg(long)]
    pub resume: bool,
    /// With --only: take the dependencies' work from their branches on the remote (merged in
    /// the plan's order) instead of running them, and push each workstream's branch with its
    /// result as a git note (`refs/notes/flow/WORKFLOW/WORKSTREAM`) for `flow merge --fetch`.
    #[arg(long, requires = "only")]
    pub push: bool,
    /// The remote of --push.
    #[arg(long, default_value = "origin", value_name = "REMOTE", requires = "push")]
    pub remote: String,
    /// Show the run in the full-screen dashboard (`flow watch`) instead of progress lines;
    /// quitting it (q) leaves the run going, its table printed at the end.
    #[arg(long, conflicts_with = "resume")]
    pub watch: bool,
    #[command(flatten)]
    pub run_options: RunOptionArgs,
}

/// How run progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Live bars (one per active workstream).
    Bars,
    /// One timestamped line per event.
    Plain,
    /// Nothing but the final table.
    Quiet,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    flow_dsl::parse_duration(text)
}

/// Run the built-in example: a small Python repository built by five shell agents.
///
/// Creates a sample repository (in a new temporary folder, or --dir), then runs the demo
/// workflow on it with shell agents: real worktrees, agents in parallel, a merge queue with
/// the project's tests as `verify`. Needs only git and python3; no account, key or network.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the sample repository (must be new or empty).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// How progress is shown.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// Create every workstream's worktree, branch and context without launching anything.
///
/// For people who start their own agent sessions in the worktrees. A workstream whose
/// dependencies have not merged yet waits: run `flow merge`, then `flow prepare` again.
/// Existing worktrees are reused; anything else in the way is refused.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Print the exact prompt a workstream's agent is given.
#[derive(Debug, Args)]
#[command(allow_missing_positional = true)]
pub struct ContextArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The workstream.
    #[arg(value_name = "WORKSTREAM")]
    pub workstream: String,
    /// Print `agent_config.json` instead of the prompt.
    #[arg(long)]
    pub config: bool,
}

/// Merge every ready workstream branch into the integration branch, in the plan's order.
///
/// What each worktree left uncommitted is committed first; each branch is checked against
/// its scope, merged in memory, and `verify` runs on the merged tree (a failure rolls the
/// merge back). Prints what merged, what was skipped, and why.
///
/// Exit status: 0 when nothing conflicted or failed, 1 otherwise.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// First fetch the workstreams' branches and result notes that `flow run --only WS --push`
    /// pushed to the remote (each becomes the local branch; a workstream not pushed is
    /// skipped).
    #[arg(long)]
    pub fetch: bool,
    /// The remote of --fetch.
    #[arg(long, default_value = "origin", value_name = "REMOTE", requires = "fetch")]
    pub remote: String,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Write the workflow for another engine that runs job graphs (GitHub Actions).
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: ExportTarget,
}

/// The engines flow exports to.
#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    GithubActions(GithubActionsArgs),
}

/// Write a GitHub Actions workflow: one job per workstream, `needs:` from depends-on.
///
/// Each workstream's job checks out the repository with its history, installs flow and the
/// agent CLI, and runs `flow run FILE --only WS --push`: it merges its dependencies' pushed
/// branches in the plan's order, runs the workstream, and pushes its branch with its result
/// as a git note. A last job runs `flow merge --fetch` (every branch, in the plan's order, with
/// `verify`) and `flow land`. Account keys come from secrets of the same name
/// (`${{ secrets.NAME }}`); a job's timeout is its workstream's `timeout` for every attempt,
/// plus half an hour.
///
/// Without -o, the workflow goes to standard output when that is not a terminal, else to
/// `.github/workflows/flow-NAME.yml` at the repository's root.
#[derive(Debug, Args)]
pub struct GithubActionsArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Where to write it (`-` for standard output).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The runner label of every job.
    #[arg(long, default_value = "ubuntu-latest", value_name = "LABEL")]
    pub runs_on: String,
    /// The runner label of one workstream's job (repeatable).
    #[arg(long, value_name = "WORKSTREAM=LABEL")]
    pub runs_on_for: Vec<String>,
    /// Install flow with `cargo install --locked --git URL` (default: from crates.io).
    #[arg(long, value_name = "URL", conflicts_with = "flow_release")]
    pub flow_git: Option<String>,
    /// Install flow from a release archive (`.tar.gz` with the `flow` binary at its top).
    #[arg(long, value_name = "URL")]
    pub flow_release: Option<String>,
    /// The remote the jobs push to and fetch from.
    #[arg(long, default_value = "origin", value_name = "REMOTE")]
    pub remote: String,
}

/// Push the integration branch and open (or update) its pull request on GitHub.
///
/// Pushes with the git CLI, so your credentials, SSH agent and helpers work as they do for
/// `git push`. The pull request is opened only once the push succeeded, through GitHub's REST
/// API with the token in GITHUB_TOKEN (else `gh auth token`); an open pull request for the
/// branch is updated instead. Its body is the run's summary: what each workstream did, its
/// review, its test, the decision log, tokens and cost. The workflow's
/// `integrate { push "REMOTE"; pull-request { title ..; base ..; draft; labels .. } }` sets
/// the remote and the pull request; without a `pull-request` block only the push is done.
///
/// Exit status: 0 when pushed (and the pull request opened or updated), 1 when the push or
/// the pull request failed, 2 when the workflow is invalid.
#[derive(Debug, Args)]
pub struct LandArgs {
    /// The workflow file (taken as the file when it ends in `.kdl` or names a file), or a
    /// run (`flow runs` lists them) whose workflow and summary to land; default: the nearest
    /// `parallel.kdl` and its latest run, else the results its jobs pushed.
    #[arg(value_name = "FILE|RUN")]
    pub target: Option<String>,
    /// The remote (default: the workflow's `push`, else `origin`).
    #[arg(long, value_name = "REMOTE")]
    pub remote: Option<String>,
    /// Open or update the pull request even when the workflow has no `pull-request` block.
    #[arg(long)]
    pub pull_request: bool,
    /// Only push; no pull request.
    #[arg(long, conflicts_with = "pull_request")]
    pub no_pull_request: bool,
}

/// Show overlaps: declared (from `owns`, with the files that exist) and live (paths changed
/// by more than one workstream, with a trial merge of each pair).
///
/// A workstream's changes are the commits on its branch and what its worktree holds
/// uncommitted; the trial merge includes the uncommitted files, computed in memory without
/// touching the worktree. Exit status: 1 when a trial merge conflicts, else 0.
#[derive(Debug, Args)]
pub struct ConflictsArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Bring the integration branch into workstreams' branches, in their worktrees.
///
/// For each workstream named (default: every one with a worktree), merges the integration
/// branch into its branch in its worktree and commits the merge, so the work goes on on top
/// of what has merged. Works on the worktrees of `flow prepare` and of `flow run`; takes the
/// workflow's run lock, so it is refused while a run is under way.
///
/// Nothing is touched in a worktree that is refused: one with uncommitted changes (listed),
/// a merge or rebase in progress, another branch checked out, or a merge that would conflict
/// (found by a trial merge in memory; the conflicting files are listed). A branch that
/// already holds the integration branch is said to be up to date.
///
/// With --agent, a merge that conflicts is left in the worktree for the workflow's resolver
/// agent (`integrate { resolver "AGENT" }`), launched as a run launches it, inside the guard
/// of the git directory; its resolution is committed only when it exited 0, changed nothing
/// in the git directory, no conflict marker is left and the worktree is still on its branch.
/// Otherwise what it changed in the git directory is undone, the sync given up and the branch
/// put back where it was. Each resolution is logged to the decision log of the workflow's
/// latest run.
///
/// Exit status: 0 when every workstream is up to date or was synced, 1 when one was refused
/// or its resolver failed, 2 when the workflow is invalid or a run of it is at work.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The workflow file (default `parallel.kdl`; taken as the file when it ends in `.kdl` or
    /// names a file), then the workstreams.
    #[arg(value_name = "FILE|WORKSTREAM")]
    pub words: Vec<String>,
    /// Hand a merge that conflicts to the workflow's resolver agent instead of refusing it.
    #[arg(long)]
    pub agent: bool,
    /// How long a stopped resolver gets between SIGINT and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub grace: std::time::Duration,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Set a workstream's conflict with the integration branch up for you to resolve.
///
/// After a run stopped on a conflict (on-conflict "stop", or the resolver failed), or a
/// `flow merge` or `flow sync` said one: merges the integration branch into the workstream's
/// branch in its own worktree, leaving the conflict as `git merge` does (markers in the
/// files, the merge in progress), and says where it is and what to do. Resolve the files,
/// `git commit`, then `flow resume` merges the resolved branch (with `verify`) and logs the
/// resolution as yours in the run's decision log (`flow merge` when there was no run).
/// Resuming waits, deciding nothing, while the merge is not committed or conflict markers
/// are committed (what a crashed run left is made safe all the same). Run again, it says the same; a worktree with uncommitted changes, another
/// operation in progress or another branch is refused untouched.
///
/// Exit status: 0 when the conflict is set up (or there is none), 1 when refused, 2 when the
/// workstream is unknown or a run of the workflow is at work.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The workflow file (default `parallel.kdl`; taken as the file when it ends in `.kdl` or
    /// names a file), then the workstream.
    #[arg(value_name = "FILE|WORKSTREAM", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Start a workstream's agent in its worktree, interactively, with its prompt.
///
/// Prepares the worktree first when needed, as `flow prepare` does (files copied, `setup`
/// run, scope hook installed), writes the prompt a run would give (with what finished
/// dependencies handed off), then starts the agent's `interactive` command there with this
/// terminal: its clean environment with the `FLOW_*` variables, in the sandbox a run's agent
/// gets. With --shell, your `$SHELL` instead (your environment plus `FLOW_*`, the same
/// sandbox). The session (who, which agent, when, how it ended) is recorded for `flow
/// status`; what it changed in the git directory is undone as in a run. When you are done,
/// commit in the worktree and run `flow done`.
///
/// Exit status: the session's own, or 1 when it could not start (an agent with no
/// interactive form, a failing setup, a session already open), 2 for an unknown workstream.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The workflow file (default `parallel.kdl`; taken as the file when it ends in `.kdl` or
    /// names a file), then the workstream.
    #[arg(value_name = "FILE|WORKSTREAM", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
    /// Open your `$SHELL` in the worktree instead of the agent.
    #[arg(long)]
    pub shell: bool,
    /// Start it without the kernel sandbox (it may then write anywhere you can); the
    /// environment is the same.
    #[arg(long)]
    pub no_sandbox: bool,
}

/// Mark a workstream worked on by hand as finished, check it and merge it.
///
/// Refuses, saying what to do, when the workstream is not prepared, its session is still
/// open, its worktree has uncommitted changes (listed), its branch has no commit of its own,
/// its commits change files outside its scope (even when the scope hook was bypassed with
/// `--no-verify`), or its `test` fails (the end of its output shown). Then merges it into
/// the integration branch in the plan's order with `verify`, as `flow merge` does; with
/// dependencies not merged yet, it is queued and merges with the one that merges them.
///
/// Exit status: 0 when merged or queued, 1 when refused or the merge or `verify` failed,
/// 2 for an unknown workstream.
#[derive(Debug, Args)]
pub struct DoneArgs {
    /// The workflow file (default `parallel.kdl`; taken as the file when it ends in `.kdl` or
    /// names a file), then the workstream.
    #[arg(value_name = "FILE|WORKSTREAM", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Remove a workflow's worktrees and branches.
///
/// Refuses to drop uncommitted changes or branches with unmerged commits unless --force.
/// The integration branch is deleted only when it holds nothing beyond base (or --force).
/// Worktree records whose folders were deleted by hand are pruned. Run records in `.flow/`
/// are kept.
///
/// Exit status: 0 when everything was removed, or all that was kept is the integration
/// branch (it holds the result); 1 when work was kept (uncommitted or unmerged).
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The workflow file (default: the nearest `parallel.kdl`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Drop uncommitted changes and unmerged branches too.
    #[arg(long)]
    pub force: bool,
    /// Print what was removed and kept as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Continue a run after a failure, a crash or Ctrl-C.
///
/// Before doing anything it says, for each workstream, what it will do and why: keep it
/// (merged and unchanged), merge it (checked, not yet merged), check it (its agent finished
/// before the run stopped), or run it again (failed, interrupted, or its spec changed, and
/// then its dependents too). The record is checked against git: branches and the
/// integration branch changed by hand are noticed, not trusted. A conflict resolved by hand
/// after `flow resolve` is merged from the person's commit; the resume waits for them,
/// deciding nothing, while that merge is not committed or conflict markers are committed.
/// What a crashed run left is made safe first all the same, since the person works in the
/// same repository: its agents stopped, what they changed in the git directory undone (their
/// workstreams failed).
#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub run: RunChoice,
    /// The workflow file (default: the one the run was started with).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Only print what would be done.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the decisions as JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    #[command(flatten)]
    pub run_options: RunOptionArgs,
}

/// The options shared by `flow run` and `flow resume`.
#[derive(Debug, Args)]
pub struct RunOptionArgs {
    /// Agents running at once (overrides the workflow's `max-parallel`).
    #[arg(long, short = 'j', value_name = "N")]
    pub max_parallel: Option<usize>,
    /// After a failure, keep starting workstreams that do not depend on it.
    #[arg(long, conflicts_with = "abort_on_failure")]
    pub keep_going: bool,
    /// After a failure, also stop the agents still running (default: let them finish).
    #[arg(long)]
    pub abort_on_failure: bool,
    /// How progress is shown: bars on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// How long a stopped agent gets between SIGINT and SIGKILL; a second Ctrl-C kills at once.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub grace: std::time::Duration,
    /// The delay before the first retry of a failed attempt; each later retry waits twice as long.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_delay: std::time::Duration,
    /// Fail a workstream whose last attempt passed a budget (its work is not merged). By
    /// default the work the money paid for is kept and the overrun reported (OVER BUDGET in
    /// the table and `flow status`); either way no further attempt starts on a spent budget.
    #[arg(long)]
    pub deny_overrun: bool,
}

impl RunOptionArgs {
    /// The scheduler's settings these options make, for the workstreams `only` names (all
    /// when `None`).
    pub fn settings(&self, only: Option<Vec<usize>>) -> flow_engine::RunSettings {
        flow_engine::RunSettings {
            options: flow_engine::RunOptions {
                max_parallel: self.max_parallel,
                keep_going: self.keep_going,
                abort_on_failure: self.abort_on_failure,
                only,
                retry_base: self.retry_delay,
                deny_overrun: self.deny_overrun,
            },
            grace: self.grace,
        }
    }
}

/// Show where a run stands: a table of workstreams, or JSON, or the markdown board.
///
/// Under the table: why each workstream that did not succeed stopped, and every agent
/// attempt of the workstreams that needed more than one (the work, retries, fixes with what
/// they fixed, reviews, resolutions), with what each spent, and each review's verdict.
///
/// With no run recorded yet, it says so as `flow runs` does, and exits 0.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub run: RunChoice,
    /// Print the run state as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the markdown status board.
    #[arg(long)]
    pub markdown: bool,
    /// Keep the table on screen, redrawn in place as the run changes, until it ends (or
    /// Ctrl-C).
    #[arg(long, short, conflicts_with_all = ["json", "markdown"])]
    pub watch: bool,
}

/// Print a workstream's log (agent output, test and verify output), or every log with
/// `--all`, each line after its workstream's name.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The workstream (`_verify` for the verify log).
    #[arg(required_unless_present = "all")]
    pub workstream: Option<String>,
    /// Every workstream's log (and verify's), interleaved as the lines arrive, each line
    /// after its workstream's name in a colour of its own.
    #[arg(long, short, conflicts_with_all = ["workstream", "json"])]
    pub all: bool,
    #[command(flatten)]
    pub run: RunChoice,
    /// Keep printing as the log grows, until the run ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Print one JSON object per line of the log: the run, the workstream and the text.
    #[arg(long)]
    pub json: bool,
    /// Print the log of the workstream's `setup` commands instead.
    #[arg(long)]
    pub setup: bool,
}

/// Check a commit in a worktree flow made (called by the worktree's `pre-commit` hook).
///
/// Refuses (exit 1) a commit whose staged paths leave the workstream's `owns`, enter its
/// `forbid`, or are files flow copied from your checkout; names each path and rule.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// The hook being run.
    #[arg(value_enum)]
    pub hook: HookName,
    /// The workflow file, in your checkout.
    #[arg(long, value_name = "FILE")]
    pub workflow: PathBuf,
    /// The workstream whose worktree this is.
    #[arg(long, value_name = "NAME")]
    pub workstream: String,
    /// The list of files flow copied into the worktree (never to be committed).
    #[arg(long, value_name = "FILE")]
    pub copied: Option<PathBuf>,
}

/// The hooks `flow hook` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookName {
    /// Before a commit is made: the staged paths against the scope.
    PreCommit,
}

/// Watch a run in a full-screen dashboard: every workstream with its state, time, attempts,
/// tokens, cost and what it waits on; the selected one's output, changes and failure; the
/// merge queue, budgets and alerts.
///
/// It attaches to a run going on elsewhere (following its record as it changes) or shows a
/// finished one. Keys: up/down (or j/k) select, Enter or f follows the output, PageUp/PageDown
/// scroll it, Tab switches between output, changes and details, s stops the selected
/// workstream (asks the run to cancel it), r retries a failed, stopped or skipped one (as
/// `flow retry`), m sends its agent a message (as `flow tell`), x skips one that has not
/// started, / searches the output (n and N go to the next and previous match, Esc clears), o
/// opens a shell in its worktree, q quits and leaves the run going.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunChoice,
}

/// Ask a run going on to run a failed workstream again, or one a person stopped or skipped.
///
/// The run starts a new attempt of it from a clean worktree when a slot is free, its `retries`
/// and `fix-attempts` whole again; its dependents that were skipped wait for it again. Its
/// budgets still count what it spent. Asked of a workstream skipped because a dependency
/// failed (or was stopped or skipped by a person), it retries that dependency. The retry is
/// recorded in the run's events; the run refuses it (an alert) if the workstream is no longer
/// failed, stopped or skipped. Once the run is over, `flow
/// resume` runs its failed workstreams again. `flow watch` does the same with r.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The failed, stopped or skipped workstream (or one skipped because of those).
    #[arg(value_name = "WORKSTREAM")]
    pub workstream: String,
    /// The run (default: the latest).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
}

/// Send a message to a workstream's agent during a run.
///
/// The agent gets it as a fix attempt once its current attempt ends (it is never cut short),
/// in the same worktree, continuing its session where its agent can, else with its prompt and
/// the message; its work is checked after it. It does not count against `fix-attempts`; the
/// budgets apply. A workstream that has not started gets it after its first attempt. Finished
/// work (ready, merged, done) takes no message, and a failed one must be retried first. The
/// text is given to the agent as it is, never run by a shell; control characters are dropped
/// and it is cut at 2000 characters. `flow watch` does the same with m.
#[derive(Debug, Args)]
pub struct TellArgs {
    /// The workstream whose agent is told.
    #[arg(value_name = "WORKSTREAM")]
    pub workstream: String,
    /// The message (several words are joined with spaces).
    #[arg(value_name = "TEXT", required = true, num_args = 1..)]
    pub text: Vec<String>,
    /// The run (default: the latest).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
}

/// Write a run's report: one HTML page that needs no network, with a timeline of every
/// workstream's stages (attempts apart, the critical path marked), each failure with its log
/// tail, the dependency graph coloured by state, changes, and cost against the budgets.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub run: RunChoice,
    /// Where to write the page (`-` for standard output; default: `report.html` in the run's
    /// folder, `.flow/runs/RUN/`).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Which recorded run a command reads: `RUN` or `--run RUN`, the latest by default.
#[derive(Debug, Args)]
pub struct RunChoice {
    /// The run (default: the latest; `flow runs` lists them).
    #[arg(value_name = "RUN")]
    pub positional: Option<String>,
    /// The run, as an option (the same as RUN).
    #[arg(long = "run", value_name = "RUN", conflicts_with = "positional")]
    pub option: Option<String>,
}

impl RunChoice {
    /// The run asked for, if any.
    pub fn id(&self) -> Option<&str> {
        self.positional.as_deref().or(self.option.as_deref())
    }
}

/// List past runs, oldest first.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Show what a run spent: tokens and dollars per workstream, model, agent, account and
/// purpose (work, fix, review, resolve), against every budget, the most expensive
/// workstreams, and cheaper models to consider. What a reviewer or a resolver spent counts
/// for its own agent and model.
///
/// Costs come from what each agent reported, or from the `std:models` price table (dated,
/// overridable in the workflow) for agents that report only tokens.
#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub run: RunChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Write a starting workflow file (`parallel.kdl`) to edit.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write it (default: `parallel.kdl` at the repository's root, where the other
    /// commands look for it).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// The agent preset its workstreams run (`shell`: shell scripts instead of tasks).
    #[arg(long, value_name = "NAME", default_value = flow_stdlib::DEFAULT_AGENT,
          value_parser = clap::builder::PossibleValuesParser::new(flow_stdlib::agent_names()))]
    pub agent: String,
}

/// Print a shell's completion script for flow.
///
/// bash: `source <(flow completions bash)`, or save it as
/// `~/.local/share/bash-completion/completions/flow`. zsh: save it as `_flow` in a folder
/// of `$fpath`. fish: save it as `~/.config/fish/completions/flow.fish`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print flow's manual page (roff), or write one page per command into a folder.
///
/// `flow man | man -l -` reads it; `flow man --dir DIR` writes `flow.1` and `flow-VERB.1`
/// for every command into DIR, for `MANPATH`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write the pages into this folder instead of printing `flow.1`.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Explain a command, or a topic: `workflow` (the workflow language) or `exit-codes`.
#[derive(Debug, Args)]
pub struct HelpArgs {
    /// A command (`run`, `status`, ...) or a topic (`workflow`, `exit-codes`).
    #[arg(value_name = "COMMAND|TOPIC", num_args = 0..)]
    pub topic: Vec<String>,
}
