//! Reads a runs store URL: which backend, what to hand sqlx, and what to show in messages.

use std::path::Path;

use crate::error::StoreError;
use crate::records::Backend;

/// A checked runs store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreLocation {
    pub backend: Backend,
    /// The URL sqlx connects to (SQLite gains `mode=rwc` so a missing file is created).
    pub connect_url: String,
    /// The URL as given, any password replaced by `***`: safe for messages and logs.
    pub shown_url: String,
}

const SQLITE_PREFIX: &str = "sqlite://";
const POSTGRES_PREFIXES: [&str; 2] = ["postgres://", "postgresql://"];

impl StoreLocation {
    /// Checks the scheme and, for SQLite, that the file's directory exists.
    pub fn parse(url: &str) -> Result<StoreLocation, StoreError> {
        let shown_url = without_password(url);
        if let Some(rest) = url.strip_prefix(SQLITE_PREFIX) {
            return sqlite_location(rest, shown_url);
        }
        if POSTGRES_PREFIXES
            .iter()
            .any(|prefix| url.starts_with(prefix))
        {
            return Ok(StoreLocation {
                backend: Backend::Postgres,
                connect_url: url.to_owned(),
                shown_url,
            });
        }
        Err(StoreError::UnsupportedUrl { url: shown_url })
    }

    pub fn connect_error(&self, source: sqlx::Error) -> StoreError {
        StoreError::Connect {
            url: self.shown_url.clone(),
            source,
        }
    }

    pub fn migrate_error(&self, source: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Migrate {
            url: self.shown_url.clone(),
            source,
        }
    }
}

fn sqlite_location(rest: &str, shown_url: String) -> Result<StoreLocation, StoreError> {
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path == ":memory:" {
        // Every pooled connection would see its own empty database.
        return Err(StoreError::UnsupportedUrl { url: shown_url });
    }
    if path.ends_with('/') {
        return Err(StoreError::MissingPath { url: shown_url });
    }
    let path = Path::new(path);
    let Some(file_name) = path.file_name() else {
        return Err(StoreError::MissingPath { url: shown_url });
    };
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let missing_directory = || StoreError::MissingDirectory {
        url: shown_url.clone(),
        dir: directory.display().to_string(),
    };
    let directory = directory.canonicalize().map_err(|_| missing_directory())?;
    if !directory.is_dir() {
        return Err(missing_directory());
    }
    // sqlx's Any driver sends the URL through a URL parser, which would read the first part
    // of a relative path as a host name and fold `..` away: hand it an absolute path.
    let Some(absolute) = directory.join(file_name).to_str().map(encode_path) else {
        return Err(StoreError::UnsupportedUrl { url: shown_url });
    };
    let connect_url = match query {
        Some(query) if query.split('&').any(|pair| pair.starts_with("mode=")) => {
            format!("{SQLITE_PREFIX}{absolute}?{query}")
        }
        Some(query) if !query.is_empty() => format!("{SQLITE_PREFIX}{absolute}?{query}&mode=rwc"),
        _ => format!("{SQLITE_PREFIX}{absolute}?mode=rwc"),
    };
    Ok(StoreLocation {
        backend: Backend::Sqlite,
        connect_url,
        shown_url,
    })
}

/// A literal file path as sqlx's SQLite URL reader wants it: it percent-decodes the path and
/// ends it at `?`, so those characters are escaped (a URL parser would end it at `#`).
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for character in path.chars() {
        match character {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            other => encoded.push(other),
        }
    }
    encoded
}

/// `scheme://user:secret@host/...` becomes `scheme://user:***@host/...`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    let Some((user, _password)) = user_info.split_once(':') else {
        return url.to_owned();
    };
    format!("{scheme}://{user}:***{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_gain_create_mode_and_an_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        let url = format!("sqlite://{}/runs.db", dir.path().display());
        let expected = format!("sqlite://{}/runs.db", canonical.display());
        let location = StoreLocation::parse(&url).unwrap();
        assert_eq!(location.backend, Backend::Sqlite);
        assert_eq!(location.connect_url, format!("{expected}?mode=rwc"));
        assert_eq!(location.shown_url, url);

        let with_query = StoreLocation::parse(&format!("{url}?cache=private")).unwrap();
        assert_eq!(
            with_query.connect_url,
            format!("{expected}?cache=private&mode=rwc")
        );
        let read_only = StoreLocation::parse(&format!("{url}?mode=ro")).unwrap();
        assert_eq!(read_only.connect_url, format!("{expected}?mode=ro"));
    }

    #[test]
    fn relative_sqlite_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        let location = StoreLocation::parse("sqlite://runs.db").unwrap();
        assert_eq!(
            location.connect_url,
            format!("sqlite://{}/runs.db?mode=rwc", cwd.display())
        );
        let parent = cwd.parent().unwrap();
        let up = StoreLocation::parse("sqlite://../Runs.db").unwrap();
        assert_eq!(
            up.connect_url,
            format!("sqlite://{}/Runs.db?mode=rwc", parent.display())
        );
    }

    #[test]
    fn url_characters_in_paths_are_escaped() {
        assert_eq!(
            encode_path("/a/b%20c?#/runs.db"),
            "/a/b%2520c%3F%23/runs.db"
        );
    }

    #[test]
    fn sqlite_path_in_missing_directory_is_refused() {
        let error = StoreLocation::parse("sqlite:///no/such/dir/runs.db").unwrap_err();
        assert!(
            matches!(error, StoreError::MissingDirectory { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("/no/such/dir"), "{error}");
    }

    #[test]
    fn empty_and_memory_sqlite_paths_are_refused() {
        for url in ["sqlite://", "sqlite:///tmp/", "sqlite://.."] {
            assert!(matches!(
                StoreLocation::parse(url).unwrap_err(),
                StoreError::MissingPath { .. }
            ));
        }
        assert!(matches!(
            StoreLocation::parse("sqlite://:memory:").unwrap_err(),
            StoreError::UnsupportedUrl { .. }
        ));
    }

    #[test]
    fn postgres_urls_pass_through() {
        for url in ["postgres://vlm@127.0.0.1:5432/runs", "postgresql://h/db"] {
            let location = StoreLocation::parse(url).unwrap();
            assert_eq!(location.backend, Backend::Postgres);
            assert_eq!(location.connect_url, url);
        }
    }

    #[test]
    fn other_schemes_are_refused_with_the_expected_forms() {
        let error = StoreLocation::parse("mysql://localhost/runs").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("mysql://localhost/runs"), "{message}");
        assert!(
            message.contains("sqlite://PATH or postgres://"),
            "{message}"
        );
        assert!(StoreLocation::parse("runs.db").is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            without_password("postgres://vlm:hunter2@db:5432/runs?sslmode=disable"),
            "postgres://vlm:***@db:5432/runs?sslmode=disable"
        );
        assert_eq!(
            without_password("postgres://vlm@db/runs"),
            "postgres://vlm@db/runs"
        );
        assert_eq!(
            without_password("sqlite:///a@b:c/runs.db"),
            "sqlite:///a@b:c/runs.db"
        );
        let error = StoreLocation::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
