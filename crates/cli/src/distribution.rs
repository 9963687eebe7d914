//! `berth pull`, `berth push`, `berth login`, `berth logout`.
//!
//! Logins are checked by the engine (`POST /auth`) and stored like Docker's CLI stores them,
//! in `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (`auths.<server>.auth`); pull and
//! push read them and send them to the engine as `X-Registry-Auth`.

use std::io::{IsTerminal, Read as _, Write as _};

use anyhow::{bail, Context, Result};
use berth_distribution::credentials;
use berth_distribution::endpoint::{auth_key, normalize_server};
use berth_engine_client::{AuthRequest, EngineClient};
use berth_image::reference::Reference;
use clap::Args;
use futures_util::StreamExt;

use crate::outln;
use crate::progress::ProgressPrinter;

/// `berth pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST]
    pub name: String,
    /// Suppress progress output; print only the pulled reference.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `berth push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// NAME[:TAG]
    pub name: String,
    /// Suppress progress output; print only the pushed reference.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Push every tag of the repository NAME.
    #[arg(short = 'a', long)]
    pub all_tags: bool,
}

/// `berth login`.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Registry (HOST[:PORT]); Docker Hub when omitted.
    pub server: Option<String>,
    /// Username.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long = "password-stdin", conflicts_with = "password")]
    pub password_stdin: bool,
}

/// `berth logout`.
#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// Registry (HOST[:PORT]); Docker Hub when omitted.
    pub server: Option<String>,
}

/// The `X-Registry-Auth` value for the registry of `reference`, from the stored logins.
fn registry_auth(reference: &str) -> Result<Option<String>> {
    Ok(credentials::header_for(reference)?)
}

async fn follow(
    stream: berth_engine_client::client::JsonStream<berth_engine_client::JsonMessage>,
    quiet: bool,
) -> Result<()> {
    follow_with(
        stream,
        ProgressPrinter::new(std::io::stdout().is_terminal(), quiet),
    )
    .await
}

async fn follow_with(
    mut stream: berth_engine_client::client::JsonStream<berth_engine_client::JsonMessage>,
    mut printer: ProgressPrinter,
) -> Result<()> {
    while let Some(m) = stream.next().await {
        let m = m?;
        if let Err(e) = printer.show(&m) {
            bail!("{e}");
        }
    }
    Ok(())
}

pub async fn pull(c: &EngineClient, a: PullArgs) -> Result<i32> {
    let r = Reference::parse(&a.name)?;
    let auth = registry_auth(&a.name)?;
    let stream = c.pull_image(&a.name, auth.as_deref()).await?;
    follow(stream, a.quiet).await?;
    if a.quiet {
        match &r.digest {
            Some(d) => outln!("{}@{d}", r.full_name()),
            None => outln!("{}", r.full_tagged()),
        }
    }
    Ok(0)
}

/// The pull `run` and `create` make for an image they do not find (or with `--pull always`):
/// Docker's messages and progress on stderr, since stdout belongs to the container.
pub(crate) async fn pull_for_container(c: &EngineClient, image: &str, quiet: bool) -> Result<()> {
    let auth = registry_auth(image)?;
    let stream = c.pull_image(image, auth.as_deref()).await?;
    follow_with(
        stream,
        ProgressPrinter::new(std::io::stderr().is_terminal(), quiet).on_stderr(),
    )
    .await
}

pub async fn push(c: &EngineClient, a: PushArgs) -> Result<i32> {
    let r = Reference::parse(&a.name)?;
    let auth = registry_auth(&a.name)?;
    if a.all_tags {
        if r.tag.is_some() || r.digest.is_some() {
            bail!("tag can't be used with --all-tags/-a: {}", a.name);
        }
        let stream = c
            .push_image(&r.familiar_name(), None, auth.as_deref())
            .await?;
        follow(stream, a.quiet).await?;
        if a.quiet {
            outln!("{}", r.full_name());
        }
        return Ok(0);
    }
    let stream = c
        .push_image(
            &r.familiar_name(),
            Some(r.tag_or_default()),
            auth.as_deref(),
        )
        .await?;
    follow(stream, a.quiet).await?;
    if a.quiet {
        outln!("{}", r.full_tagged());
    }
    Ok(0)
}

fn prompt(label: &str, hide: bool) -> Result<String> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let saved = if hide {
        termios::tcgetattr(&stdin).ok().inspect(|t| {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        })
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(t) = saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &t);
        eprintln!();
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn login(c: &EngineClient, a: LoginArgs) -> Result<i32> {
    let server = a.server.clone().unwrap_or_default();
    let tty = std::io::stdin().is_terminal();
    let username = match a.username.clone() {
        Some(u) => u,
        None if tty && !a.password_stdin => prompt("Username: ", false)?,
        None => bail!("a username is required: berth login -u USER [--password-stdin] [SERVER]"),
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = a.password.clone() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if tty {
        prompt("Password: ", true)?
    } else {
        bail!("a password is required: use --password-stdin or -p");
    };
    if username.is_empty() || password.is_empty() {
        bail!("username and password must not be empty");
    }
    c.auth(&AuthRequest {
        username: username.clone(),
        password: password.clone(),
        serveraddress: normalize_server(&server),
    })
    .await?;
    let path = credentials::config_path();
    credentials::store(&path, &server, &username, &password)?;
    outln!("Login Succeeded");
    Ok(0)
}

pub async fn logout(a: LogoutArgs) -> Result<i32> {
    let server = a.server.unwrap_or_default();
    let path = credentials::config_path();
    let key = auth_key(&server);
    if credentials::remove(&path, &server)? {
        outln!("Removing login credentials for {key}");
    } else {
        outln!("Not logged in to {key}");
    }
    Ok(0)
}
