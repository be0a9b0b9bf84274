//! The command line, as data: clap types and value parsers only, no logic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run untrusted code in sandboxes: on this machine (the local provider, the default) or on
/// DigitalOcean App Platform.
#[derive(Debug, Parser)]
#[command(
    name = "sandbox",
    version,
    propagate_version = true,
    after_help = "Start with: sandbox run --image python -- python3 -c 'print(6*7)'\n\
                  Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 auth, 5 timeout; \
                  exec and run pass the remote exit code through."
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
///
/// Their environment variables are read by `settings.rs`, so precedence (command line, then
/// environment, then configuration file) lives in one place.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Where sandboxes run: `local` (this machine, the default) or `digitalocean` (App
    /// Platform) [env: SANDBOX_PROVIDER]
    #[arg(long, global = true, value_name = "PROVIDER")]
    pub provider: Option<ProviderArg>,
    /// How to reach DigitalOcean: `api` (REST + WebSocket), `doctl`, or `auto` (the API when a
    /// token is at hand, else doctl) [env: SANDBOX_DRIVER]
    #[arg(long, global = true, value_name = "DRIVER")]
    pub driver: Option<DriverArg>,
    /// The DigitalOcean API's base URL, for example an emulator's [env: DIGITALOCEAN_API_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// The doctl authentication context to use [env: DIGITALOCEAN_CONTEXT]
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The configuration file (default `$XDG_CONFIG_HOME/do-app-sandbox/config.yaml`)
    /// [env: SANDBOX_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The local provider's state folder [env: SANDBOX_LOCAL_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub local_dir: Option<PathBuf>,
    /// Print less (only data and errors)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: `-v` debug logs of this tool, `-vv` trace, `-vvv` every library
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never draw a spinner; print progress as plain lines [env: SANDBOX_NO_PROGRESS]
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// Where sandboxes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// Namespace-isolated sandboxes on this machine.
    Local,
    /// DigitalOcean App Platform.
    #[value(alias = "do")]
    Digitalocean,
}

/// How the digitalocean provider reaches App Platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// The REST API when a token is at hand, else doctl.
    Auto,
    /// The REST API and exec WebSocket.
    Api,
    /// The doctl binary.
    Doctl,
}

/// The sandbox images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageArg {
    /// Python 3.
    Python,
    /// Node.js.
    Node,
}

/// The kind of component a sandbox runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ComponentTypeArg {
    /// A service: a public URL and a health check.
    Service,
    /// A worker: no ports, no URL.
    Worker,
}

/// Which logs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogTypeArg {
    /// What the sandbox's processes print.
    Run,
    /// The build's output.
    Build,
    /// The deployment's output.
    Deploy,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a sandbox and wait until it is ready.
    Create(CreateArgs),
    /// List the sandboxes this tool created.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Run a command in a sandbox; output streams live and the remote exit code is returned.
    Exec(ExecArgs),
    /// Delete one sandbox, or all of them.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Create a sandbox, run one command in it, print its output and delete it.
    Run(RunArgs),
    /// Read, write and list files in a sandbox.
    #[command(subcommand)]
    Files(FilesCommand),
    /// Copy files and folders between this machine and a sandbox (`NAME:PATH`), as `cp` does.
    Cp(CpArgs),
    /// List the processes running in a sandbox.
    Ps(PsArgs),
    /// Start a background process in a sandbox and print its pid.
    Launch(LaunchArgs),
    /// Send a signal to a process in a sandbox (or end every launched one).
    Kill(KillArgs),
    /// Print a sandbox's logs, or a launched process's output with `--pid`.
    Logs(LogsArgs),
    /// Print a sandbox's public URL (services only).
    Url(InfoArgs),
    /// Print a sandbox's status.
    Status(InfoArgs),
    /// Delete the sandboxes whose expiry passed and pool members whose process is gone.
    Gc(GcArgs),
    /// Push a sandbox's expiry later (where the provider allows it without a redeploy).
    Extend(ExtendArgs),
    /// Take, list, show, delete and restore snapshots of sandboxes' folders.
    #[command(subcommand)]
    Snapshot(crate::commands::snapshot::SnapshotCommand),
    /// Snapshot a sandbox's files, then delete it; prints the id to wake it with.
    Hibernate(crate::commands::snapshot::HibernateArgs),
    /// Make a new sandbox from a hibernated one's snapshot.
    Wake(crate::commands::snapshot::WakeArgs),
    /// Serve the App Platform API on localhost over local sandboxes.
    Emulator(EmulatorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Serve sandboxes as tools for AI agents over MCP (stdio or HTTP).
    Mcp(McpArgs),
}

/// `sandbox completions`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
                       sandbox completions bash > /etc/bash_completion.d/sandbox\n  \
                       sandbox completions zsh > \"${fpath[1]}/_sandbox\"\n  \
                       sandbox completions fish > ~/.config/fish/completions/sandbox.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `sandbox gc`.
#[derive(Debug, Args)]
#[command(
    after_help = "App Platform has no expiry of its own: an expired sandbox runs (and bills) \
                  until something deletes it. Pool managers sweep once a minute; `gc` sweeps \
                  now. On the local provider, expired sandboxes delete themselves."
)]
pub struct GcArgs {
    /// Only print what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox extend`.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The sandbox's name (or a unique prefix of its id).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// How much later it should expire, e.g. `30m`.
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    pub duration: std::time::Duration,
}

/// Which sandbox a command is about: by name, or by app id.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The sandbox's name (or a unique prefix of its id).
    #[arg(value_name = "NAME", required_unless_present = "id")]
    pub name: Option<String>,
    /// The app id: skips the name lookup, and works on any app, not only sandboxes.
    #[arg(long, value_name = "ID", conflicts_with = "name")]
    pub id: Option<String>,
    /// The component to attach to (default: `sandbox`, else the app's first component).
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
}

/// Options of `sandbox create` and `sandbox run` that shape the new sandbox.
#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// The image (default `python`).
    #[arg(long, short, value_name = "IMAGE")]
    pub image: Option<ImageArg>,
    /// The sandbox's name (default `sandbox-<8 hex>`).
    #[arg(long, short, value_name = "NAME")]
    pub name: Option<String>,
    /// The region (default `APP_SANDBOX_REGION`, else `atl1`).
    #[arg(long, value_name = "SLUG")]
    pub region: Option<String>,
    /// The instance size (default `apps-s-1vcpu-1gb`).
    #[arg(long, value_name = "SLUG")]
    pub instance_size: Option<String>,
    /// Service (public URL) or worker (no ports; the default).
    #[arg(long, short = 't', value_name = "TYPE")]
    pub component_type: Option<ComponentTypeArg>,
    /// An environment variable of the sandbox (repeatable; `run` also gives it to the command).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// How long to wait for the sandbox to be ready (`600`, `10m`; default 10m).
    #[arg(long = "ready-timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub ready_timeout: Option<std::time::Duration>,
    /// Delete the sandbox after this long (`90s`, `30m`, `2h`, `1d`, or combined: `1h30m`).
    /// Recorded on the app; see `sandbox gc`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<std::time::Duration>,
}

/// `sandbox create`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
                       sandbox create demo\n  \
                       sandbox create demo --image node --ttl 2h\n  \
                       sandbox create web --component-type service -e MODE=dev\n  \
                       sandbox create --from-snapshot snap-1a2b3c --json")]
pub struct CreateArgs {
    /// The sandbox's name (default `sandbox-<8 hex>`); the same as `--name`.
    #[arg(value_name = "NAME", id = "name_arg", conflicts_with = "name")]
    pub name_arg: Option<String>,
    /// What to create.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Return as soon as the app is created, without waiting for its deployment.
    #[arg(long)]
    pub no_wait: bool,
    /// Restore this snapshot into the new sandbox (deleted again if the restore fails).
    #[arg(long, value_name = "ID", conflicts_with = "no_wait")]
    pub from_snapshot: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox exec`.
#[derive(Debug, Args)]
#[command(
    override_usage = "sandbox exec [OPTIONS] <NAME|--id ID> [--] <CMD>...",
    after_help = "One CMD argument is a shell command line (`sh -c`); several are a program and \
                  its arguments, run without a shell. Options go before CMD: everything from \
                  CMD on belongs to the command.",
    after_long_help = "One CMD argument is a shell command line (`sh -c`); several are a program \
                       and its arguments, run without a shell. Options go before CMD: everything \
                       from CMD on belongs to the command.\n\n\
                       Examples:\n  \
                       sandbox exec demo python3 -c 'print(6*7)'\n  \
                       sandbox exec demo 'ls -la | head -3'\n  \
                       sandbox exec demo --timeout 30s --cwd /tmp -- make test\n  \
                       sandbox exec demo --json -- cat data.bin | jq -r .stdout_base64\n  \
                       echo hi | sandbox exec demo --stdin -- wc -c\n  \
                       sandbox exec --id 6c0e... -- ps aux"
)]
pub struct ExecArgs {
    /// Which sandbox, and the command.
    #[command(flatten)]
    pub target: TargetedCommand,
    /// An environment variable of the command (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// How the command runs.
    #[command(flatten)]
    pub command: CommandOptions,
    /// Send this tool's standard input to the command (read to its end first).
    #[arg(long)]
    pub stdin: bool,
    /// Print the result as JSON (stdout, stderr, exit code) instead of streaming it.
    #[arg(long)]
    pub json: bool,
}

/// A sandbox given by name (or `--id`), then a command: `NAME CMD...` or `--id ID CMD...`,
/// with or without `--` before the command.
#[derive(Debug, Clone, Args)]
pub struct TargetedCommand {
    /// The sandbox's name (or a unique prefix of its id); left out with `--id`.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The app id: skips the name lookup, and works on any app, not only sandboxes.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The component to attach to (default: `sandbox`, else the app's first component).
    #[arg(long, value_name = "COMPONENT")]
    pub component: Option<String>,
    /// The command and its arguments.
    #[arg(
        value_name = "CMD",
        num_args = 0..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub argv: Vec<String>,
}

impl TargetedCommand {
    /// Which sandbox, and the command's words. With `--id`, what clap read as the name is
    /// the command's first word.
    pub fn split(&self, usage: &str) -> Result<(TargetArgs, Vec<String>), String> {
        let mut argv = self.argv.clone();
        let mut name = self.name.clone();
        if self.id.is_some()
            && let Some(first) = name.take()
        {
            argv.insert(0, first);
        }
        if name.is_none() && self.id.is_none() {
            return Err(format!("which sandbox? usage: {usage}"));
        }
        if argv.is_empty() {
            return Err(format!("no command given; usage: {usage}"));
        }
        let target = TargetArgs {
            name,
            id: self.id.clone(),
            component: self.component.clone(),
        };
        Ok((target, argv))
    }
}

/// How a command runs.
#[derive(Debug, Clone, Args)]
pub struct CommandOptions {
    /// Kill the command after this long (`30`, `90s`, `10m`, `1h`; exit code 5). `0`, the
    /// default, is no limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_limit)]
    pub timeout: Option<Limit>,
    /// The command's working directory (default the sandbox's `/home/sandbox/app`).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
}

/// `sandbox delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The sandbox's name.
    #[arg(value_name = "NAME", required_unless_present_any = ["id", "all"], conflicts_with_all = ["id", "all"])]
    pub name: Option<String>,
    /// The app id (skips the name lookup; works on any app).
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    pub id: Option<String>,
    /// Delete every sandbox this tool created.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox run`.
#[derive(Debug, Args)]
#[command(
    after_help = "One CMD argument is a shell command line (`sh -c`); several are a program and \
                  its arguments, run without a shell. Options go before CMD.",
    after_long_help = "One CMD argument is a shell command line (`sh -c`); several are a program \
                       and its arguments, run without a shell. Options go before CMD.\n\n\
                       Examples:\n  \
                       sandbox run python3 -c 'print(6*7)'\n  \
                       sandbox run --image node -- node -e 'console.log(6*7)'\n  \
                       sandbox run --keep --name demo 'pip install requests'\n  \
                       sandbox run --json --timeout 2m -- python3 job.py"
)]
pub struct RunArgs {
    /// What to create.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Keep the sandbox after the command ends (its name is printed).
    #[arg(long)]
    pub keep: bool,
    /// How the command runs.
    #[command(flatten)]
    pub command: CommandOptions,
    /// Send this tool's standard input to the command (read to its end first).
    #[arg(long)]
    pub stdin: bool,
    /// Print the result as JSON (sandbox, stdout, stderr, exit code).
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub argv: Vec<String>,
}

/// `sandbox files ...`.
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Print a file's bytes to standard output.
    #[command(override_usage = "sandbox files read [OPTIONS] <NAME|--id ID> <PATH>")]
    Read(FileArgs),
    /// Write standard input (or `--from FILE`, or `--content TEXT`) to a file.
    #[command(override_usage = "sandbox files write [OPTIONS] <NAME|--id ID> <PATH>")]
    Write(WriteArgs),
    /// List a folder.
    #[command(override_usage = "sandbox files ls [OPTIONS] <NAME|--id ID> [PATH]")]
    Ls(LsArgs),
    /// Copy a local file or folder into the sandbox.
    #[command(
        override_usage = "sandbox files upload [OPTIONS] <NAME|--id ID> <LOCAL> <REMOTE>",
        after_help = "As with cp: into an existing REMOTE folder (or one ending with `/`) the upload goes under its own name; `LOCAL/.` is a folder's content; LOCAL `-` is standard input. A folder travels as one tar stream: symlinks in it are sent as symlinks and nothing they point to is read, unless --follow-symlinks."
    )]
    Upload(UploadArgs),
    /// Copy a file or folder from the sandbox to this machine.
    #[command(
        override_usage = "sandbox files download [OPTIONS] <NAME|--id ID> <REMOTE> <LOCAL>",
        after_help = "As with cp: into an existing LOCAL folder (or one ending with `/`) the download goes under its own name; `REMOTE/.` is a folder's content; LOCAL `-` is standard output (files). A folder arrives through a checked temporary folder: no setuid, setgid or sticky bits, no group or other write, no member outside its destination; symlinks pointing outside it, device nodes and FIFOs are left out with a warning. A folder already at the destination needs --merge or --replace."
    )]
    Download(DownloadArgs),
    /// Remove a file (or a folder with `-r`).
    #[command(override_usage = "sandbox files rm [OPTIONS] <NAME|--id ID> <PATH>")]
    Rm(RmArgs),
    /// Create a folder and its parents.
    #[command(override_usage = "sandbox files mkdir [OPTIONS] <NAME|--id ID> <PATH>")]
    Mkdir(FileArgs),
}

/// `sandbox cp`.
#[derive(Debug, Args)]
#[command(
    after_help = "One side is `NAME:PATH` in a sandbox (`NAME:` is its working folder), the \
                  other a local path or `-`.",
    after_long_help = "One side is `NAME:PATH` in a sandbox (`NAME:` is its working folder), the \
                       other a local path (write `./a:b` for a local name with a colon).\n\n\
                       As with cp: a destination that is a folder, or ends with `/`, receives \
                       the source under its own name; otherwise the destination is the new \
                       name. `SRC/.` is a folder's content. `-` is standard input or output \
                       (files only). Folders need -r.\n\n\
                       Examples:\n  \
                       sandbox cp ./a.txt demo:/home/sandbox/app/\n  \
                       sandbox cp -r ./src demo:app/src\n  \
                       sandbox cp -r demo:/home/sandbox/app ./out\n  \
                       sandbox cp demo:report.csv - | head\n  \
                       echo hello | sandbox cp - demo:/tmp/hello.txt"
)]
pub struct CpArgs {
    /// Copy folders with everything in them.
    #[arg(short = 'r', short_alias = 'R', long)]
    pub recursive: bool,
    /// Upload what symlinks in a folder point to, even outside it, instead of the links.
    #[arg(long, short = 'L')]
    pub follow_symlinks: bool,
    /// Merge a downloaded folder into one already at the destination.
    #[arg(long, conflicts_with = "replace")]
    pub merge: bool,
    /// Replace a folder already at the destination of a downloaded folder.
    #[arg(long)]
    pub replace: bool,
    /// The component to attach to.
    #[arg(long, value_name = "COMPONENT")]
    pub component: Option<String>,
    /// What to copy: a local path, `-`, or `NAME:PATH`.
    #[arg(value_name = "SRC", allow_hyphen_values = true)]
    pub source: String,
    /// Where to: a local path, `-`, or `NAME:PATH`.
    #[arg(value_name = "DEST", allow_hyphen_values = true)]
    pub dest: String,
}

/// A sandbox given by name or `--id`, then positional arguments.
#[derive(Debug, Clone, Args)]
pub struct PositionalTarget {
    /// The app id (then the sandbox's name is left out).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The component to attach to.
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
}

/// `sandbox files read|mkdir`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// Which sandbox, when given by id.
    #[command(flatten)]
    pub target: PositionalTarget,
    /// The sandbox's name (left out with `--id`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The path in the sandbox.
    #[arg(value_name = "PATH", allow_hyphen_values = true)]
    pub path: Option<String>,
}

impl FileArgs {
    /// The positional words as given (a name first unless `--id`).
    pub fn words(&self) -> Vec<String> {
        [&self.name, &self.path]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `sandbox files write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Which sandbox, when given by id.
    #[command(flatten)]
    pub target: PositionalTarget,
    /// Write this text instead of standard input.
    #[arg(long, value_name = "TEXT", conflicts_with = "from")]
    pub content: Option<String>,
    /// Write this local file's bytes instead of standard input.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// The sandbox's name (left out with `--id`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The file to write, in the sandbox.
    #[arg(value_name = "PATH", allow_hyphen_values = true)]
    pub path: Option<String>,
}

impl WriteArgs {
    /// The positional words as given (a name first unless `--id`).
    pub fn words(&self) -> Vec<String> {
        [&self.name, &self.path]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `sandbox files ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Which sandbox, when given by id.
    #[command(flatten)]
    pub target: PositionalTarget,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// The sandbox's name (left out with `--id`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The folder (default the working directory).
    #[arg(value_name = "PATH", allow_hyphen_values = true)]
    pub path: Option<String>,
}

impl LsArgs {
    /// The positional words as given (a name first unless `--id`).
    pub fn words(&self) -> Vec<String> {
        [&self.name, &self.path]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `sandbox files upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Which sandbox, when given by id.
    #[command(flatten)]
    pub target: PositionalTarget,
    /// Upload what symlinks in a folder point to, even outside it, instead of the links.
    #[arg(long, short = 'L')]
    pub follow_symlinks: bool,
    /// The sandbox's name (left out with `--id`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The local file or folder (`-`: standard input).
    #[arg(value_name = "LOCAL", allow_hyphen_values = true)]
    pub local: Option<String>,
    /// Where it goes in the sandbox.
    #[arg(value_name = "REMOTE", allow_hyphen_values = true)]
    pub remote: Option<String>,
}

impl UploadArgs {
    /// The positional words as given (a name first unless `--id`).
    pub fn words(&self) -> Vec<String> {
        [&self.name, &self.local, &self.remote]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `sandbox files download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Which sandbox, when given by id.
    #[command(flatten)]
    pub target: PositionalTarget,
    /// Merge into a folder already at the destination: new names are added, files of the same
    /// name replaced.
    #[arg(long, conflicts_with = "replace")]
    pub merge: bool,
    /// Replace a folder already at the destination as a whole.
    #[arg(long)]
    pub replace: bool,
    /// The sandbox's name (left out with `--id`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The file or folder in the sandbox.
    #[arg(value_name = "REMOTE", allow_hyphen_values = true)]
    pub remote: Option<String>,
    /// Where it goes on this machine (`-`: standard output).
    #[arg(value_name = "LOCAL", allow_hyphen_values = true)]
    pub local: Option<String>,
}

impl DownloadArgs {
    /// The positional words as given (a name first unless `--id`).
    pub fn words(&self) -> Vec<String> {
        [&self.name, &self.remote, &self.local]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `sandbox files rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Which sandbox, when given by id.
    #[command(flatten)]
    pub target: PositionalTarget,
    /// Remove folders and their contents.
    #[arg(long, short)]
    pub recursive: bool,
    /// The sandbox's name (left out with `--id`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The path in the sandbox.
    #[arg(value_name = "PATH", allow_hyphen_values = true)]
    pub path: Option<String>,
}

impl RmArgs {
    /// The positional words as given (a name first unless `--id`).
    pub fn words(&self) -> Vec<String> {
        [&self.name, &self.path]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `sandbox ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Which sandbox.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only processes whose command line contains this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox launch`.
#[derive(Debug, Args)]
#[command(
    override_usage = "sandbox launch [OPTIONS] <NAME|--id ID> [--] <CMD>...",
    after_long_help = "The command is a shell command line; several CMD arguments are joined \
                       by spaces. It keeps running after this tool exits; its output is kept \
                       in the sandbox.\n\n\
                       Examples:\n  \
                       sandbox launch demo python3 -m http.server 8080\n  \
                       sandbox logs demo --pid 42 --follow\n  \
                       sandbox kill demo 42"
)]
pub struct LaunchArgs {
    /// Which sandbox, and the command.
    #[command(flatten)]
    pub target: TargetedCommand,
    /// An environment variable of the process (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// The process's working directory.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox kill`.
#[derive(Debug, Args)]
#[command(override_usage = "sandbox kill [OPTIONS] <NAME|--id ID> <PID|--all>")]
pub struct KillArgs {
    /// Which sandbox, when given by id.
    #[command(flatten)]
    pub target: PositionalTarget,
    /// The signal: a name (`TERM`, `KILL`, `INT`, ...) or a number.
    #[arg(long, short, value_name = "SIGNAL", default_value = "TERM")]
    pub signal: String,
    /// End every process this tool launched (TERM, then KILL after 3 s).
    #[arg(long)]
    pub all: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// The sandbox's name (left out with `--id`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The pid (unless `--all`).
    #[arg(value_name = "PID", allow_hyphen_values = true)]
    pub pid: Option<String>,
}

impl KillArgs {
    /// The positional words as given (a name first unless `--id`).
    pub fn words(&self) -> Vec<String> {
        [&self.name, &self.pid]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `sandbox logs`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
                       sandbox logs demo --tail 50\n  \
                       sandbox logs demo --follow\n  \
                       sandbox logs demo --type deploy\n  \
                       sandbox logs demo --pid 42 --follow")]
pub struct LogsArgs {
    /// Which sandbox.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Keep printing new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Which logs.
    #[arg(long = "type", value_name = "TYPE", default_value = "run")]
    pub kind: LogTypeArg,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// The output of a process started with `sandbox launch` instead (with `--follow`:
    /// until it ends).
    #[arg(long, value_name = "PID", conflicts_with = "kind")]
    pub pid: Option<u32>,
    /// Print JSON lines (`{"line": ...}` each), or `{"pid", "output"}` with `--pid`.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox url` and `sandbox status`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Which sandbox.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox emulator`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
                       sandbox emulator --port 0 --json\n  \
                       sandbox emulator --pace 30 --token secret\n  \
                       DIGITALOCEAN_TOKEN=secret sandbox --provider digitalocean \\\n      \
                       --api-url http://127.0.0.1:8080 run python3 -V")]
pub struct EmulatorArgs {
    /// The port to listen on (0 picks a free one; the URL is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// The API token to accept (default: a random one, printed at start).
    #[arg(
        long,
        env = "EMULATOR_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Seconds a deployment takes to walk from PENDING_BUILD to ACTIVE (0: at once).
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub pace: f64,
    /// Where the emulator keeps its sandboxes (default
    /// `$XDG_DATA_HOME/do-app-sandbox/emulator`): never the local provider's folder, so
    /// `sandbox list` and `delete --all` on the local provider do not see them
    /// [env: SANDBOX_EMULATOR_DIR]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print the URL and token as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox mcp`.
#[derive(Debug, Args)]
#[command(
    after_help = "Speaks MCP (JSON-RPC) on stdin and stdout; logs go to stderr. Add it to an \
                  agent's configuration as the command `sandbox` with the arguments `mcp`: see \
                  docs/mcp.md. The server's sandboxes are deleted when it stops (stdin closed, \
                  SIGINT, SIGTERM) unless --keep."
)]
pub struct McpArgs {
    /// The expiry of the sandboxes the server creates, unless a call asks for another.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    pub ttl: std::time::Duration,
    /// Keep the server's sandboxes when it stops (they still expire).
    #[arg(long)]
    pub keep: bool,
    /// The most sandboxes the server may have at once.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_sandboxes: usize,
    /// Let the tools reach every sandbox of the provider, not only the server's own.
    #[arg(long)]
    pub allow_any: bool,
    /// Let `upload_file` and `download_file` use this host folder (and nothing outside it).
    #[arg(long, value_name = "DIR")]
    pub allow_host_files: Option<PathBuf>,
    /// The timeout of `exec` when a call gives none.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub exec_timeout: std::time::Duration,
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (port 0 picks a free one),
    /// until SIGINT or SIGTERM. A bearer token is required on every request.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// The bearer token of `--http` (default: a random one, printed at start).
    #[arg(
        long,
        env = "SANDBOX_MCP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        requires = "http"
    )]
    pub http_token: Option<String>,
    /// Let `--http` listen on an address other than loopback.
    #[arg(long, requires = "http")]
    pub http_allow_remote: bool,
}

/// The longest duration accepted anywhere (about 31 years): past it, a number is a typo.
const MAX_DURATION_SECS: f64 = 1e9;

/// A duration: a bare number of seconds (`90`, `1.5`), or whole numbers with units `s`, `m`,
/// `h`, `d`, run together as in `1h30m`. Zero is refused.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match parse_span(text)? {
        d if d.is_zero() => Err(format!("`{text}`: the duration must be more than zero")),
        d => Ok(d),
    }
}

/// A time limit: a duration as [`parse_duration`] reads it, or `0` for no limit.
pub(crate) fn parse_limit(text: &str) -> Result<Limit, String> {
    let span = parse_span(text)?;
    Ok(Limit((!span.is_zero()).then_some(span)))
}

/// A time limit of a command: `None` is no limit (`--timeout 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<std::time::Duration>);

fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a duration: write seconds (`90`, `1.5`) or whole numbers with \
             units s, m, h, d (`90s`, `30m`, `2h`, `1h30m`)"
        )
    };
    let too_long = || {
        format!("`{text}` is longer than the largest duration accepted ({MAX_DURATION_SECS:e} s)")
    };
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = text.parse().map_err(|_| bad())?;
        if !secs.is_finite() {
            return Err(bad());
        }
        if secs > MAX_DURATION_SECS {
            return Err(too_long());
        }
        return Ok(std::time::Duration::from_secs_f64(secs));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        if digits.is_empty() {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| too_long())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(too_long)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    if total as f64 > MAX_DURATION_SECS {
        return Err(too_long());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// Parses `KEY=VALUE`.
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn durations_read_as_seconds_minutes_hours_and_days() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("30m"), Ok(1800));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("1d"), Ok(86400));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("90"), Ok(90));
        assert_eq!(
            parse_duration("1.5"),
            Ok(std::time::Duration::from_millis(1500))
        );
        for bad in ["", "m", "5x", "-5m", "1.5h", "1..5", "h1"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
        for zero in ["0", "0s", "0m0s"] {
            let err = parse_duration(zero).unwrap_err();
            assert!(err.contains("more than zero"), "{zero}: {err}");
        }
        for huge in ["2e9", "2000000000", "99999999999999999999s", "40000d"] {
            let err = parse_duration(huge).unwrap_err();
            assert!(
                err.contains("longer than the largest") || err.contains("is not a duration"),
                "{huge}: {err}"
            );
        }
        assert!(
            parse_duration("2000000000")
                .unwrap_err()
                .contains("longer than")
        );
        assert_eq!(parse_limit("0"), Ok(Limit(None)));
        assert_eq!(
            parse_limit("1h"),
            Ok(Limit(Some(std::time::Duration::from_secs(3600))))
        );
        let cli = Cli::try_parse_from(["sandbox", "create", "--ttl", "30m"]).unwrap();
        let Command::Create(args) = cli.command else {
            panic!("create")
        };
        assert_eq!(args.spec.ttl, Some(std::time::Duration::from_secs(1800)));
        assert!(Cli::try_parse_from(["sandbox", "run", "--ttl", "soon", "--", "true"]).is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_a_name_or_an_id_then_a_command_with_or_without_dashes() {
        let split = |argv: &[&str]| {
            let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
            let Command::Exec(args) = cli.command else {
                panic!("not exec")
            };
            let (target, words) = args.target.split("usage")?;
            Ok::<_, String>((
                target.name,
                target.id,
                words,
                args.json,
                args.command.timeout,
            ))
        };
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (name, id, argv, ..) = split(&["sandbox", "exec", "demo", "--", "echo", "hi"]).unwrap();
        assert_eq!((name.as_deref(), id), (Some("demo"), None));
        assert_eq!(argv, words(&["echo", "hi"]));
        // Without `--`: everything from the command on is the command's, flags included.
        let (name, _, argv, json, _) =
            split(&["sandbox", "exec", "demo", "ls", "-la", "--json"]).unwrap();
        assert_eq!(name.as_deref(), Some("demo"));
        assert_eq!(argv, words(&["ls", "-la", "--json"]));
        assert!(!json);
        // Options before the command are this tool's.
        let (_, _, argv, json, timeout) = split(&[
            "sandbox",
            "exec",
            "demo",
            "--json",
            "--timeout",
            "1h",
            "bash",
        ])
        .unwrap();
        assert_eq!(argv, words(&["bash"]));
        assert!(json);
        assert_eq!(
            timeout,
            Some(Limit(Some(std::time::Duration::from_secs(3600))))
        );
        // With `--id`, the first word is the command's.
        let (name, id, argv, ..) =
            split(&["sandbox", "exec", "--id", "abc", "--", "ls", "/"]).unwrap();
        assert_eq!((name, id.as_deref()), (None, Some("abc")));
        assert_eq!(argv, words(&["ls", "/"]));
        let (_, _, argv, ..) = split(&["sandbox", "exec", "--id", "abc", "ls"]).unwrap();
        assert_eq!(argv, words(&["ls"]));
        assert!(
            split(&["sandbox", "exec", "demo"])
                .unwrap_err()
                .contains("no command")
        );
        assert!(
            split(&["sandbox", "exec"])
                .unwrap_err()
                .contains("which sandbox")
        );
        // `--timeout 0` is no limit.
        let (.., timeout) = split(&["sandbox", "exec", "--timeout", "0", "demo", "true"]).unwrap();
        assert_eq!(timeout, Some(Limit(None)));
    }

    #[test]
    fn create_takes_its_name_as_a_positional_or_an_option() {
        let name = |argv: &[&str]| {
            let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
            let Command::Create(args) = cli.command else {
                panic!("not create")
            };
            Ok::<_, String>((args.name_arg, args.spec.name))
        };
        assert_eq!(
            name(&["sandbox", "create", "demo"]).unwrap(),
            (Some("demo".into()), None)
        );
        assert_eq!(
            name(&["sandbox", "create", "--name", "demo"]).unwrap(),
            (None, Some("demo".into()))
        );
        assert!(name(&["sandbox", "create", "a", "--name", "b"]).is_err());
    }

    #[test]
    fn run_takes_its_command_with_or_without_dashes() {
        for argv in [
            &["sandbox", "run", "--image", "node", "--", "node", "-e", "1"][..],
            &["sandbox", "run", "--image", "node", "node", "-e", "1"][..],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            let Command::Run(args) = cli.command else {
                panic!("not run")
            };
            assert_eq!(args.argv, ["node", "-e", "1"]);
        }
    }

    #[test]
    fn env_pairs_must_have_a_key() {
        assert_eq!(
            parse_key_value("A=b=c"),
            Ok(("A".to_owned(), "b=c".to_owned()))
        );
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }

    #[test]
    fn delete_needs_a_name_an_id_or_all() {
        assert!(Cli::try_parse_from(["sandbox", "delete"]).is_err());
        assert!(Cli::try_parse_from(["sandbox", "delete", "--all", "--force"]).is_ok());
        assert!(Cli::try_parse_from(["sandbox", "delete", "x", "--all"]).is_err());
    }
}
