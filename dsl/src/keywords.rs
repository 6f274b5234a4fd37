//! The keywords a workflow file spells out (`"critical"`, `"worktree"`, `"fail"`...), as
//! enums shared by the syntax tree and the validated workflow.
//!
//! They live apart from both so that the syntax tree, an earlier stage, does not depend on
//! the validated workflow, a later one.

use serde::Serialize;

/// Defines an enum of keywords with their workflow-file spelling.
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in workflow files.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Looks a value up by its spelling.
            pub fn from_name(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

keyword_enum! {
    /// How urgent a workstream is; breaks ties when ordering starts and merges.
    Priority { Critical = "critical", High = "high", Medium = "medium", Low = "low" }
}

impl Priority {
    /// A rank where smaller goes first.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

keyword_enum! {
    /// The kind of work, used to pick a model from the `kind` table.
    TaskKind {
        Architecture = "architecture", Feature = "feature", Crud = "crud", Review = "review",
        Bugfix = "bugfix", Tests = "tests", Docs = "docs", Refactor = "refactor",
    }
}

keyword_enum! {
    /// Where a workstream runs.
    Isolation {
        /// Its own git worktree and branch, merged into the integration branch.
        Worktree = "worktree",
        /// A scratch folder: nothing is committed or merged.
        None = "none",
    }
}

keyword_enum! {
    /// What the merge queue does when a branch conflicts.
    OnConflict {
        /// Stop merging; the run fails.
        Stop = "stop",
        /// Hand the conflict to the `resolver` agent in the integration worktree.
        Agent = "agent",
        /// Mark the workstream conflicted (its dependents skipped) and go on.
        Skip = "skip",
    }
}

keyword_enum! {
    /// In which order ready branches merge.
    MergeOrder {
        /// Strictly in the plan's merge order.
        Plan = "plan",
        /// As soon as each is ready; dependencies still merge first.
        Ready = "ready",
    }
}

keyword_enum! {
    /// What happens to changes outside a workstream's scope.
    ScopePolicy {
        /// The workstream fails and nothing of it merges.
        Fail = "fail",
        /// The violation is reported and the changes merge.
        Warn = "warn",
        /// The out-of-scope changes are dropped in a new commit.
        Revert = "revert",
    }
}

keyword_enum! {
    /// What an agent gets on standard input.
    StdinMode {
        /// Nothing: standard input is empty.
        None = "none",
        /// The rendered prompt.
        Prompt = "prompt",
    }
}

keyword_enum! {
    /// The model API an agent that flow runs itself speaks (`api`).
    ApiKind {
        /// Anthropic's Messages API (`POST /v1/messages`).
        Anthropic = "anthropic",
        /// The Chat Completions API (`POST /v1/chat/completions`) that OpenAI and every
        /// OpenAI-compatible server speak.
        Openai = "openai",
    }
}

keyword_enum! {
    /// Whether an API agent's replies are streamed (server-sent events).
    Streaming {
        On = "on",
        Off = "off",
    }
}

keyword_enum! {
    /// How a finished branch is brought up to date when its merge conflicts or breaks `verify`.
    SyncMode {
        /// Merge the integration branch into the workstream's branch.
        Merge = "merge",
        /// Replay the workstream's commits on the integration branch; when one conflicts,
        /// merge instead.
        Rebase = "rebase",
        /// Do not: the conflict or failure is handled by `on-conflict` and the failure policy.
        Off = "off",
    }
}

keyword_enum! {
    /// Whether an agent runs inside the kernel sandbox.
    SandboxMode {
        /// Writes only to its worktree, its temporary folder and the folders listed (Landlock).
        On = "on",
        /// No sandbox: the agent may write anywhere the user may.
        Off = "off",
    }
}
