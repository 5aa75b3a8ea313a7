//! `ember position …`: show and plot what a position scheme computes.
//!
//! The scheme flags are not a second schema: [`SchemeArgs`] serializes into the same table as
//! the TOML `[position]` section (`--scheme rope --scaling yarn --factor 4` becomes
//! `scheme = "rope"` + `[scaling] type = "yarn", factor = 4.0`) and deserializes as
//! [`PositionConfig`], so key names, defaults and unknown-key checks live only in the config
//! types. The sizes (`--dim`, `--heads`, `--positions`, `--seq-len`, `--vector`) are the
//! [`Probe`] the scheme is evaluated at.
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ember::viz::position::{plot_scheme, show_text};
use ember_position::{inspect, PositionConfig, Probe, RopeScaling};
use serde::Serialize;

#[derive(Subcommand)]
pub enum PositionCmd {
    /// Print what a scheme computes: sinusoidal table, RoPE frequencies (and a rotated
    /// vector), ALiBi slopes and bias. `--json` prints one object, documented in README.md
    /// (section "`ember position show` / `plot`").
    Show(ShowArgs),
    /// Draw a PNG: sinusoidal heatmap, ALiBi bias per head, RoPE long-range decay curve.
    Plot(PlotArgs),
}

/// The scheme: every field is a key of the TOML `[position]` table.
#[derive(Args, Serialize)]
pub struct SchemeArgs {
    /// none | sinusoidal | learned | rope | alibi | t5 | kerple | fire | xpos
    #[arg(long)]
    scheme: String,
    /// sinusoidal: interleaved | halves; rope: interleaved | half_split (default; or half-split)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    layout: Option<String>,
    /// Frequency / timescale base [default: 10000]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<f64>,
    /// rope: fraction of features that rotate [default: 1]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    partial_rotary_factor: Option<f64>,
    #[command(flatten)]
    #[serde(skip_serializing_if = "ScalingArgs::is_empty")]
    scaling: ScalingArgs,
    /// learned: table size [default: --positions]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_len: Option<usize>,
    /// learned: init std [default: 0.02]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    init_std: Option<f64>,
    /// t5: buckets per head [default: 32]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    num_buckets: Option<usize>,
    /// t5: distance from which keys share the last bucket [default: 128]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_distance: Option<usize>,
    /// fire: hidden units of the MLP [default: 32]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden: Option<usize>,
    /// fire: threshold L of psi(max(L, i)) [default: 512]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<usize>,
    /// xpos: gamma of zeta = (2m/d + gamma)/(1 + gamma) [default: 0.4]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    gamma: Option<f64>,
    /// xpos: B of the exponent n/B [default: 512]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    scale_base: Option<f64>,
}

/// RoPE scaling: the keys of the TOML `[position.scaling]` table.
#[derive(Args, Serialize, Default, PartialEq)]
pub struct ScalingArgs {
    /// rope scaling: none | linear | dynamic | yarn | llama3
    #[arg(long = "scaling", value_name = "SCALING")]
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    /// Scaling factor (linear, dynamic, yarn, llama3)
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    factor: Option<f64>,
    /// dynamic: trained context length
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_position: Option<usize>,
    /// yarn, llama3: original (pre-trained) context length
    #[arg(long = "original-max", allow_hyphen_values = true)]
    #[serde(rename = "original_max_position", skip_serializing_if = "Option::is_none")]
    original_max: Option<usize>,
    /// llama3 [default: 1]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    low_freq_factor: Option<f64>,
    /// llama3 [default: 4]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    high_freq_factor: Option<f64>,
    /// yarn [default: 32]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    beta_fast: Option<f64>,
    /// yarn [default: 1]
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    beta_slow: Option<f64>,
    /// yarn: override the attention factor 0.1 ln(factor) + 1
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    attention_factor: Option<f64>,
}

impl ScalingArgs {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The sizes the scheme is evaluated at.
#[derive(Args)]
pub struct ProbeArgs {
    /// Vector width: d_model (sinusoidal, learned) or head_dim (rope) [show: 8; plot: 64]
    #[arg(long, allow_hyphen_values = true)]
    dim: Option<usize>,
    /// Attention heads (alibi) [default: 8]
    #[arg(long, allow_hyphen_values = true)]
    heads: Option<usize>,
    /// Positions T [show: 8; plot: 64 sinusoidal, 16 alibi, 1024 rope distances]
    #[arg(long, allow_hyphen_values = true)]
    positions: Option<usize>,
    /// rope --scaling dynamic: sequence length the frequencies are for [default: --positions]
    #[arg(long, allow_hyphen_values = true)]
    seq_len: Option<usize>,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    #[command(flatten)]
    probe: ProbeArgs,
    /// rope: a vector of --dim numbers to rotate to positions 0..T-1, e.g. 1,2,3,4,5,6,7,8 or -0.5,1,2,0.25
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    vector: Option<Vec<f64>>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PlotArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    #[command(flatten)]
    probe: ProbeArgs,
    /// Output PNG file
    #[arg(long)]
    out: PathBuf,
}

/// The flag that sets TOML key `key` (for error messages).
fn flag(key: &str) -> String {
    match key {
        "type" | "scaling" => "--scaling".into(),
        "original_max_position" => "--original-max".into(),
        k => format!("--{}", k.replace('_', "-")),
    }
}

/// Rewrite serde's "unknown field `factor`, expected `layout` or `base`" in flag names;
/// the `scaling` key stands for the scaling flags that were given (`scaling_flags`).
fn in_flags(message: &str, scaling_flags: &str) -> String {
    if !(message.starts_with("unknown field") || message.starts_with("missing field")) {
        return message.to_string();
    }
    let name = |key: &str| if key == "scaling" && !scaling_flags.is_empty() { scaling_flags.to_string() } else { flag(key) };
    message.split('`').enumerate().map(|(i, part)| if i % 2 == 1 { name(part) } else { part.to_string() }).collect::<Vec<_>>().join("`")
}

impl SchemeArgs {
    /// Parse the flags as the TOML `[position]` table they spell. A learned table defaults to
    /// `positions` rows (TOML has no default for `max_len`).
    fn config(&self, positions: usize) -> anyhow::Result<PositionConfig> {
        let mut table = toml::Table::try_from(self).context("encoding the scheme flags")?;
        if self.scheme == "learned" && self.max_len.is_none() {
            table.insert("max_len".into(), toml::Value::Integer(positions as i64));
        }
        let scaling = self.scaling.kind.as_deref().map(|k| format!(" --scaling {k}")).unwrap_or_default();
        let scaling_flags = match table.get("scaling") {
            Some(toml::Value::Table(t)) => t.keys().map(|k| flag(k)).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        };
        toml::Value::Table(table)
            .try_into::<PositionConfig>()
            .map_err(|e| anyhow::anyhow!("--scheme {}{scaling}: {}", self.scheme, in_flags(e.message(), &scaling_flags)))
    }
}

impl ProbeArgs {
    /// The probe with the command's defaults (`plot` draws larger pictures than `show` prints).
    fn probe(&self, scheme: &str, plot: bool, vector: Option<Vec<f64>>) -> Probe {
        let positions_default = match (plot, scheme) {
            (false, _) => 8,
            (true, "alibi") => 16,
            (true, "rope") => 1024,
            (true, _) => 64,
        };
        Probe {
            dim: self.dim.unwrap_or(if plot { 64 } else { 8 }),
            heads: self.heads.unwrap_or(8),
            positions: self.positions.unwrap_or(positions_default),
            seq_len: self.seq_len,
            vector,
        }
    }
}

/// The configuration and probe a command's flags describe.
fn parse(scheme: &SchemeArgs, probe: &ProbeArgs, plot: bool, vector: Option<Vec<f64>>) -> anyhow::Result<(PositionConfig, Probe)> {
    let probe = probe.probe(&scheme.scheme, plot, vector);
    let config = scheme.config(probe.positions)?;
    if probe.seq_len.is_some() && !matches!(config, PositionConfig::Rope { scaling: RopeScaling::Dynamic { .. }, .. }) {
        bail!("--seq-len: only --scheme rope --scaling dynamic depends on the sequence length");
    }
    Ok((config, probe))
}

pub fn run(cmd: PositionCmd) -> anyhow::Result<i32> {
    match cmd {
        PositionCmd::Show(args) => {
            let (config, probe) = parse(&args.scheme, &args.probe, false, args.vector)?;
            let out = inspect(&config, &probe)?;
            if args.json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                print!("{}", show_text(&out));
            }
        }
        PositionCmd::Plot(args) => {
            let (config, probe) = parse(&args.scheme, &args.probe, true, None)?;
            let what = plot_scheme(&config, &probe, &args.out)?;
            println!("wrote {} ({what})", args.out.display());
        }
    }
    Ok(0)
}
