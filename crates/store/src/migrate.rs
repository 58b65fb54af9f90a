//! Schema migrations, the part both backends share: each backend keeps its
//! own numbered `.sql` files (`migrations/NNNN_name.sql`), lists them with
//! [`migrations!`](crate::migrations), and asks [`pending`] which to run
//! from the version its database records. Each runs in its own
//! transaction with the recorded version moved on in the same one.

use crate::{Result, StoreError};

/// One schema step: its number (1, 2, ... with no gap), name and SQL.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Lists a backend's migration files as [`Migration`]s, in order:
/// `migrations!("../migrations", 1 "0001_initial.sql", 2 "0002_storage.sql")`
/// (the folder as `include_str!` sees it from the calling file). [`pending`]
/// checks that each file's number is its version.
#[macro_export]
macro_rules! migrations {
    ($dir:literal, $($version:literal $file:literal),* $(,)?) => {
        &[$($crate::migrate::Migration {
            version: $version,
            name: $file,
            sql: include_str!(concat!($dir, "/", $file)),
        }),*]
    };
}

/// The newest version `known` migrates to.
pub fn latest(known: &[Migration]) -> i64 {
    known.last().map_or(0, |m| m.version)
}

/// The migrations to run on a database at version `current`, in order.
/// Refuses a database newer than `known` (a newer Gantry migrated it:
/// touching it could corrupt it) naming both versions, and a list that is
/// not numbered 1, 2, ... (a bug caught by each backend's tests).
pub fn pending(current: i64, known: &[Migration]) -> Result<&[Migration]> {
    for (i, m) in known.iter().enumerate() {
        if m.version != i as i64 + 1 || !m.name.starts_with(&format!("{:04}_", m.version)) {
            return Err(StoreError::Internal(format!(
                "migration {} ({}) is out of order: expected number {}",
                m.version,
                m.name,
                i + 1
            )));
        }
    }
    let newest = latest(known);
    if current > newest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: newest,
        });
    }
    Ok(&known[current.max(0) as usize..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[Migration] = &[
        Migration {
            version: 1,
            name: "0001_a.sql",
            sql: "",
        },
        Migration {
            version: 2,
            name: "0002_b.sql",
            sql: "",
        },
    ];

    #[test]
    fn runs_what_is_missing_and_refuses_a_newer_schema() {
        assert_eq!(pending(0, M).expect("all").len(), 2);
        assert_eq!(pending(1, M).expect("one")[0].name, "0002_b.sql");
        assert!(pending(2, M).expect("none").is_empty());
        let err = pending(3, M).expect_err("newer");
        assert!(matches!(
            err,
            StoreError::SchemaTooNew { found: 3, known: 2 }
        ));
        let text = err.to_string();
        assert!(text.contains('3') && text.contains('2'), "{text}");
    }

    #[test]
    fn a_gap_in_the_numbering_is_a_bug() {
        let bad = [M[1]];
        assert!(matches!(pending(0, &bad), Err(StoreError::Internal(_))));
        let misnamed = [Migration {
            name: "0002_a.sql",
            ..M[0]
        }];
        assert!(matches!(
            pending(0, &misnamed),
            Err(StoreError::Internal(_))
        ));
    }
}
