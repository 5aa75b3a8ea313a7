//! Finding a token in a table's vocabulary, with suggestions when it is missing.
//!
//! [`find_token`] returns the row of an exact match, or an error naming up to five close
//! tokens: the same word in another case, or within a small edit (Levenshtein) distance
//! (at most `max(2, len/3)`).

/// Why a token was not found: what was asked, how many tokens there are, close ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("token `{token}` is not in the table ({vocab} tokens){}", suggestion(.close))]
pub struct UnknownToken {
    /// The token asked for.
    pub token: String,
    /// The vocabulary size.
    pub vocab: usize,
    /// Up to five close tokens, closest first.
    pub close: Vec<String>,
}

fn suggestion(close: &[String]) -> String {
    if close.is_empty() { String::new() } else { format!("; did you mean: {}", close.join(", ")) }
}

/// The row of `token` in `tokens` (row order), or an [`UnknownToken`] with suggestions.
pub fn find_token(tokens: &[String], token: &str) -> Result<usize, UnknownToken> {
    if let Some(row) = tokens.iter().position(|t| t == token) {
        return Ok(row);
    }
    let lower = token.to_lowercase();
    let limit = 2.max(token.chars().count() / 3);
    let mut scored: Vec<(usize, &String)> = tokens
        .iter()
        .filter(|t| t.len().abs_diff(token.len()) <= 3)
        .map(|t| (if t.to_lowercase() == lower { 0 } else { edit_distance(&lower, &t.to_lowercase()) }, t))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    let close = scored.iter().take(5).map(|(_, t)| t.to_string()).collect();
    Err(UnknownToken { token: token.to_string(), vocab: tokens.len(), close })
}

/// Levenshtein distance between `a` and `b`, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("king", "king"), 0);
        assert_eq!(edit_distance("kingg", "king"), 1);
    }

    #[test]
    fn exact_match_or_close_suggestions_in_order() {
        let tokens: Vec<String> = ["king", "queen", "King", "kings", "apple"].iter().map(|s| s.to_string()).collect();
        assert_eq!(find_token(&tokens, "queen"), Ok(1));
        let err = find_token(&tokens, "kingg").unwrap_err();
        assert_eq!(err.close, vec!["King", "king", "kings"], "all at distance 1 (case folded), ties in token order");
        assert!(err.to_string().contains("did you mean: King, king, kings"), "{err}");
        let none = find_token(&tokens, "zzzzzzzz").unwrap_err();
        assert!(none.close.is_empty() && !none.to_string().contains("did you mean"));
    }
}
