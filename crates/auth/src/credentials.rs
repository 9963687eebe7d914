//! The credential store: access key pairs in an AWS shared-credentials file.
//!
//! `<dir>/credentials` is the same INI format the AWS CLI and SDKs read
//! (`AWS_SHARED_CREDENTIALS_FILE`), so the file the server creates is directly usable by a
//! client. Every profile in it is one key pair, and all of them are accepted. Each key pair
//! belongs to a profile name; a later IAM layer maps access key ids to principals (users) and
//! their policies, keeping this file (or a store table) as the source of secrets.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::Rng;

use crate::AuthError;

/// The file name inside the store directory.
pub const CREDENTIALS_FILE_NAME: &str = "credentials";
/// The profile the server creates on first start.
pub const DEFAULT_PROFILE: &str = "default";

/// One access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The public half, e.g. `AKIAIOSFODNN7EXAMPLE`.
    pub access_key_id: String,
    /// The secret half (40 characters for generated keys).
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// A fresh random key pair from the operating system's CSPRNG: `AKIA` + 16 uppercase
    /// alphanumerics, and a 40-character secret of the base64 alphabet.
    pub fn generate() -> Credentials {
        const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const SECRET_CHARS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rng = OsRng;
        let mut pick = |alphabet: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
                .collect()
        };
        let access_key_id = format!("AKIA{}", pick(ID_CHARS, 16));
        let secret_access_key = pick(SECRET_CHARS, 40);
        Credentials {
            access_key_id,
            secret_access_key,
        }
    }
}

/// One key pair with the profile (later: principal) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialEntry {
    /// The profile name (`default`, ...).
    pub profile: String,
    /// The key pair.
    pub credentials: Credentials,
}

/// The access key pairs the server accepts, loaded from `<dir>/credentials`.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
    entries: Vec<CredentialEntry>,
    by_key: HashMap<String, usize>,
}

impl CredentialStore {
    /// Loads `<dir>/credentials`, creating dir and file (fresh random pair in a `[default]`
    /// profile, mode 0600, written atomically) if missing. The bool says whether it was created
    /// now.
    pub fn load_or_create(dir: &Path) -> Result<(CredentialStore, bool), AuthError> {
        let path = dir.join(CREDENTIALS_FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => return Ok((Self::parse(&path, &bytes)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(AuthError::Io { path, source }),
        }
        create_dir_private(dir)?;
        let entry = CredentialEntry {
            profile: DEFAULT_PROFILE.to_string(),
            credentials: Credentials::generate(),
        };
        let text = render(std::slice::from_ref(&entry));
        if write_new_file(&path, text.as_bytes())? {
            let store = Self::from_entries(path, vec![entry]);
            Ok((store, true))
        } else {
            // Another process created it between our read and our write: use theirs.
            let bytes = fs::read(&path).map_err(|source| AuthError::Io {
                path: path.clone(),
                source,
            })?;
            Ok((Self::parse(&path, &bytes)?, false))
        }
    }

    /// Loads an existing credentials file (any path); an error if it is missing or malformed.
    pub fn load(path: &Path) -> Result<CredentialStore, AuthError> {
        let bytes = fs::read(path).map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    /// A store holding the given entries, not backed by a file read (tests, embedding).
    /// `path` is only reported by [`CredentialStore::path`]. Later entries with an access key
    /// id already present are ignored.
    pub fn from_entries(path: PathBuf, entries: Vec<CredentialEntry>) -> CredentialStore {
        let mut store = CredentialStore {
            path,
            entries: Vec::with_capacity(entries.len()),
            by_key: HashMap::new(),
        };
        for entry in entries {
            store.insert(entry);
        }
        store
    }

    /// Adds a key pair in memory (not written to the file). Returns false, and changes
    /// nothing, if its access key id is already present.
    pub fn insert(&mut self, entry: CredentialEntry) -> bool {
        if self.by_key.contains_key(&entry.credentials.access_key_id) {
            return false;
        }
        self.by_key
            .insert(entry.credentials.access_key_id.clone(), self.entries.len());
        self.entries.push(entry);
        true
    }

    /// The credentials file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key pair with this access key id, if any.
    pub fn lookup(&self, access_key_id: &str) -> Option<&Credentials> {
        self.lookup_entry(access_key_id).map(|e| &e.credentials)
    }

    /// The key pair with this access key id and the profile it belongs to.
    pub fn lookup_entry(&self, access_key_id: &str) -> Option<&CredentialEntry> {
        self.by_key.get(access_key_id).map(|&i| &self.entries[i])
    }

    /// The key pair of a profile, e.g. [`DEFAULT_PROFILE`].
    pub fn profile(&self, name: &str) -> Option<&Credentials> {
        self.entries
            .iter()
            .find(|e| e.profile == name)
            .map(|e| &e.credentials)
    }

    /// All key pairs in file order.
    pub fn entries(&self) -> &[CredentialEntry] {
        &self.entries
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<CredentialStore, AuthError> {
        let entries =
            parse_ini(bytes).map_err(|(line, reason)| AuthError::MalformedCredentials {
                path: path.to_path_buf(),
                line,
                reason,
            })?;
        Ok(Self::from_entries(path.to_path_buf(), entries))
    }
}

/// Renders entries in the shared-credentials format.
fn render(entries: &[CredentialEntry]) -> String {
    let mut out = String::from(
        "# Berth control plane access keys (AWS shared-credentials format).\n\
         # Use with: AWS_SHARED_CREDENTIALS_FILE=<this file> aws --endpoint-url ... ecs ...\n",
    );
    for e in entries {
        out.push_str(&format!(
            "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            e.profile, e.credentials.access_key_id, e.credentials.secret_access_key
        ));
    }
    out
}

/// Parses a shared-credentials file. Errors carry a 1-based line number.
fn parse_ini(bytes: &[u8]) -> Result<Vec<CredentialEntry>, (usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        (line, "not valid UTF-8".to_string())
    })?;

    struct Section {
        name: String,
        line: usize,
        id: Option<String>,
        secret: Option<String>,
    }
    let mut sections: Vec<Section> = Vec::new();

    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err((n, format!("section header {line:?} lacks its closing ']'")));
            };
            let name = name.trim();
            // The config file's `[profile NAME]` form is accepted too.
            let name = name.strip_prefix("profile ").map(str::trim).unwrap_or(name);
            if name.is_empty() {
                return Err((n, "empty profile name".to_string()));
            }
            if let Some(prev) = sections.iter().find(|s| s.name == name) {
                return Err((
                    n,
                    format!("profile [{name}] already defined at line {}", prev.line),
                ));
            }
            sections.push(Section {
                name: name.to_string(),
                line: n,
                id: None,
                secret: None,
            });
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err((n, "expected `[profile]` or `key = value`".to_string()));
        };
        let key = key.trim();
        let value = value.trim();
        let Some(section) = sections.last_mut() else {
            return Err((n, format!("`{key}` appears before any [profile] header")));
        };
        let slot = match key {
            "aws_access_key_id" => &mut section.id,
            "aws_secret_access_key" => &mut section.secret,
            "aws_session_token" | "aws_security_token" => {
                return Err((
                    n,
                    "session tokens are not supported: berth issues long-term keys only"
                        .to_string(),
                ))
            }
            // Other settings (region, output, ...) are the client's business.
            _ => continue,
        };
        if value.is_empty() {
            return Err((n, format!("`{key}` is empty")));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err((n, format!("`{key}` contains whitespace")));
        }
        if key == "aws_access_key_id" && value.contains('/') {
            return Err((n, "`aws_access_key_id` contains '/'".to_string()));
        }
        if slot.is_some() {
            return Err((n, format!("`{key}` given twice in [{}]", section.name)));
        }
        *slot = Some(value.to_string());
    }

    let mut entries: Vec<CredentialEntry> = Vec::with_capacity(sections.len());
    for s in sections {
        let (Some(id), Some(secret)) = (s.id, s.secret) else {
            return Err((
                s.line,
                format!(
                    "profile [{}] needs both `aws_access_key_id` and `aws_secret_access_key`",
                    s.name
                ),
            ));
        };
        if let Some(prev) = entries.iter().find(|e| e.credentials.access_key_id == id) {
            return Err((
                s.line,
                format!(
                    "profile [{}] repeats the access key id of profile [{}]",
                    s.name, prev.profile
                ),
            ));
        }
        entries.push(CredentialEntry {
            profile: s.name,
            credentials: Credentials {
                access_key_id: id,
                secret_access_key: secret,
            },
        });
    }
    if entries.is_empty() {
        return Err((1, "no profile with an access key in it".to_string()));
    }
    Ok(entries)
}

/// Creates `dir` (and parents) if missing; a directory created here gets mode 0700.
fn create_dir_private(dir: &Path) -> Result<(), AuthError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| AuthError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` only if `path` does not exist yet, atomically: a uniquely named
/// temp file (mode 0600) is written and fsynced, then hard-linked to `path` (which fails if
/// another process got there first), and the directory is fsynced. Returns false if `path`
/// already existed.
fn write_new_file(path: &Path, bytes: &[u8]) -> Result<bool, AuthError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| AuthError::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{:016x}",
        CREDENTIALS_FILE_NAME,
        std::process::id(),
        OsRng.gen::<u64>()
    ));
    let result = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        let created = match fs::hard_link(&tmp, path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            // A filesystem without hard links: fall back to rename (last writer wins).
            Err(_) => {
                fs::rename(&tmp, path).map_err(io(path))?;
                true
            }
        };
        if let Ok(d) = fs::File::open(dir) {
            // Persist the new directory entry; not all filesystems support fsync on dirs.
            let _ = d.sync_all();
        }
        Ok(created)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_aws_shape() {
        for _ in 0..50 {
            let c = Credentials::generate();
            assert_eq!(c.access_key_id.len(), 20);
            assert!(c.access_key_id.starts_with("AKIA"));
            assert!(c.access_key_id[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
            assert_eq!(c.secret_access_key.len(), 40);
            assert!(c
                .secret_access_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        }
        assert_ne!(Credentials::generate(), Credentials::generate());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let c = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "topsecret".into(),
        };
        let s = format!("{c:?}");
        assert!(s.contains("AKIDEXAMPLE") && !s.contains("topsecret"), "{s}");
    }

    #[test]
    fn parses_several_profiles_comments_and_other_keys() {
        let text = "# comment\n; another\n\n[default]\naws_access_key_id = AKIA1\n aws_secret_access_key=s1 \nregion = us-east-1\n[profile ops]\naws_access_key_id=AKIA2\naws_secret_access_key = s2\n";
        let e = parse_ini(text.as_bytes()).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].profile, "default");
        assert_eq!(e[0].credentials.secret_access_key, "s1");
        assert_eq!(e[1].profile, "ops");
        assert_eq!(e[1].credentials.access_key_id, "AKIA2");
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "no profile"),
            ("[default]\n", 1, "needs both"),
            ("aws_access_key_id = x\n", 1, "before any"),
            ("[default]\njunk\n", 2, "expected"),
            ("[default\n", 1, "closing"),
            ("[]\n", 1, "empty profile"),
            ("[a]\naws_access_key_id=\n", 2, "is empty"),
            ("[a]\naws_access_key_id=x y\n", 2, "whitespace"),
            ("[a]\naws_access_key_id=x\naws_access_key_id=y\n", 3, "twice"),
            ("[a]\naws_session_token=x\n", 2, "session tokens"),
            (
                "[a]\naws_access_key_id=k\naws_secret_access_key=s\n[a]\n",
                4,
                "already defined",
            ),
            (
                "[a]\naws_access_key_id=k\naws_secret_access_key=s\n[b]\naws_access_key_id=k\naws_secret_access_key=t\n",
                4,
                "repeats",
            ),
            ("[a]\naws_access_key_id=a/b\naws_secret_access_key=s\n", 2, "'/'"),
        ];
        for (text, line, needle) in cases {
            let (l, reason) = parse_ini(text.as_bytes()).unwrap_err();
            assert_eq!(
                (l, reason.contains(needle)),
                (*line, true),
                "{text:?}: {reason}"
            );
        }
        let (l, _) = parse_ini(b"[a]\n\xff\n").unwrap_err();
        assert_eq!(l, 2);
    }

    #[test]
    fn rendered_file_parses_back() {
        let entries = vec![CredentialEntry {
            profile: "default".into(),
            credentials: Credentials::generate(),
        }];
        assert_eq!(parse_ini(render(&entries).as_bytes()).unwrap(), entries);
    }
}
