//! The hand-over message between a worker and the gate of a warm container.
//!
//! One message, written once on the container's stdin, then stdin is closed:
//! `GATE1 \0 nonce \0 argc \0 argv... \0 envc \0 KEY=VALUE... \0`. Every field
//! ends with a NUL, which no argument or variable can contain.
#![forbid(unsafe_code)]

/// What the gate runs in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// Printed before the reason when the exec fails, so the worker can tell
    /// the gate's failure from anything the job could print.
    pub nonce: String,
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs laid over the container's own environment (the
    /// image's, as the engine built it), as the engine lays a container's.
    pub env: Vec<String>,
}

const MAGIC: &str = "GATE1";
/// Largest message the gate reads.
pub const MAX_MESSAGE: usize = 4 << 20;

impl Handover {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        put(MAGIC);
        put(&self.nonce);
        put(&self.argv.len().to_string());
        self.argv.iter().for_each(|a| put(a));
        put(&self.env.len().to_string());
        self.env.iter().for_each(|e| put(e));
        out
    }

    /// `None` for anything but one whole message (a worker that died half
    /// way, a closed stdin, garbage).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.last() != Some(&0) {
            return None;
        }
        let mut fields = bytes[..bytes.len() - 1]
            .split(|b| *b == 0)
            .map(|f| std::str::from_utf8(f).ok());
        let mut next = || fields.next().flatten();
        if next()? != MAGIC {
            return None;
        }
        let nonce = next()?.to_string();
        let argc: usize = next()?.parse().ok()?;
        let argv = (0..argc)
            .map(|_| next().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        let envc: usize = next()?.parse().ok()?;
        let env = (0..envc)
            .map(|_| next().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        if argv.is_empty() || next().is_some() || env.iter().any(|e| !e.contains('=')) {
            return None;
        }
        Some(Self { nonce, argv, env })
    }
}

/// The engine's rule for a container's environment: each variable replaces
/// the one of the same name in place, or is appended.
pub fn lay_over(base: Vec<(String, String)>, over: &[String]) -> Vec<(String, String)> {
    let mut env = base;
    for kv in over {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match env.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_goes_round_and_a_partial_one_is_refused() {
        let h = Handover {
            nonce: "n0".into(),
            argv: vec!["sh".into(), "-c".into(), "echo 'a\nb'".into()],
            env: vec!["A=1".into(), "B=x=y".into(), "EMPTY=".into()],
        };
        let bytes = h.encode();
        assert_eq!(Handover::decode(&bytes), Some(h));
        for cut in 0..bytes.len() {
            assert_eq!(Handover::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            Handover::decode(b"GATE1\x00n\x000\x000\x00"),
            None,
            "no argv"
        );
    }

    #[test]
    fn variables_replace_in_place_or_append() {
        let base = vec![("PATH".into(), "/bin".into()), ("HOME".into(), "/".into())];
        let env = lay_over(base, &["HOME=/tmp".into(), "X=1".into()]);
        assert_eq!(
            env,
            vec![
                ("PATH".to_string(), "/bin".to_string()),
                ("HOME".to_string(), "/tmp".to_string()),
                ("X".to_string(), "1".to_string())
            ]
        );
    }
}
