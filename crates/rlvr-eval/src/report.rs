//! `report.md`: the summary as Markdown tables (settings, metrics per k, statuses, subsets).

use serde_json::Value;

use crate::summary::STATUSES;

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn metric_columns(ks: &[usize], reranked: bool) -> Vec<String> {
    let mut cols = Vec::new();
    let metrics: &[&str] = if reranked {
        &["pass", "maj", "mean", "rerank"]
    } else {
        &["pass", "maj", "mean"]
    };
    for m in metrics {
        for k in ks {
            cols.push(format!("{m}@{k}"));
        }
    }
    cols
}

/// The report of a summary made by [`crate::run::EvalRun::execute`] (any object with the
/// summary keys works; missing values show as `–`).
pub fn markdown_report(summary: &Value, ks: &[usize]) -> String {
    let mut s = String::new();
    let dataset = summary["dataset"].as_str().unwrap_or("?");
    s.push_str(&format!("# Evaluation: {dataset}\n\n"));
    s.push_str("| setting | value |\n|---|---|\n");
    for key in [
        "model",
        "backend",
        "dataset",
        "dataset_file",
        "verifier",
        "rerank_verifier",
        "n",
        "k",
        "temperature",
        "top_p",
        "top_k",
        "max_new_tokens",
        "seed",
        "chat_template",
        "num_problems",
        "skipped_problems",
        "sampled_problems",
        "cached_problems",
    ] {
        if let Some(v) = summary.get(key) {
            s.push_str(&format!("| {key} | {} |\n", num(v)));
        }
    }

    let reranked = summary.get("rerank_verifier").is_some();
    s.push_str("\n## Metrics\n\n| k | pass@k | maj@k | mean@k |");
    s.push_str(if reranked { " rerank@k |" } else { "" });
    s.push_str("\n|---|---|---|---|");
    s.push_str(if reranked { "---|" } else { "" });
    s.push('\n');
    for k in ks {
        s.push_str(&format!(
            "| {k} | {} | {} | {} |",
            num(&summary[format!("pass@{k}")]),
            num(&summary[format!("maj@{k}")]),
            num(&summary[format!("mean@{k}")]),
        ));
        if reranked {
            s.push_str(&format!(" {} |", num(&summary[format!("rerank@{k}")])));
        }
        s.push('\n');
    }
    if let Some(spec) = summary.get("rerank_verifier").and_then(Value::as_str) {
        s.push_str(&format!(
            "\nrerank@k: accuracy of the sample `{spec}` scores highest among the first k \
             (ties: the earlier sample).\n"
        ));
    }

    s.push_str("\n## Samples\n\n| samples | ");
    s.push_str(&STATUSES.join(" | "));
    s.push_str(" | mean score | mean response tokens | truncation rate |\n|---|");
    s.push_str(&"---|".repeat(STATUSES.len() + 3));
    s.push_str(&format!("\n| {} |", num(&summary["num_samples"])));
    for st in STATUSES {
        s.push_str(&format!(" {} |", num(&summary[st])));
    }
    s.push_str(&format!(
        " {} | {} | {} |\n",
        num(&summary["mean_score"]),
        num(&summary["mean_response_tokens"]),
        num(&summary["truncation_rate"])
    ));

    if let Some(subsets) = summary["subsets"].as_object() {
        let cols = metric_columns(ks, reranked);
        for (field, groups) in subsets {
            let Some(groups) = groups.as_object() else {
                continue;
            };
            s.push_str(&format!("\n## By {field}\n\n| {field} | problems | "));
            s.push_str(&cols.join(" | "));
            s.push_str(" | ");
            s.push_str(&STATUSES.join(" | "));
            s.push_str(" | mean response tokens | truncation rate |\n|---|---|");
            s.push_str(&"---|".repeat(cols.len() + STATUSES.len() + 2));
            s.push('\n');
            for (name, m) in groups {
                s.push_str(&format!("| {name} | {} |", num(&m["num_problems"])));
                for c in &cols {
                    s.push_str(&format!(" {} |", num(&m[c.as_str()])));
                }
                for st in STATUSES {
                    s.push_str(&format!(" {} |", num(&m[st])));
                }
                s.push_str(&format!(
                    " {} | {} |\n",
                    num(&m["mean_response_tokens"]),
                    num(&m["truncation_rate"])
                ));
            }
        }
    }
    if let Some(plots) = summary["plots"].as_array() {
        let svgs: Vec<&str> = plots
            .iter()
            .filter_map(Value::as_str)
            .filter(|p| p.ends_with(".svg"))
            .collect();
        if !svgs.is_empty() {
            s.push_str("\n## Plots\n\n");
            for p in svgs {
                let rel = std::path::Path::new(p)
                    .file_name()
                    .map(|f| format!("plots/{}", f.to_string_lossy()))
                    .unwrap_or_else(|| p.to_string());
                s.push_str(&format!("![{rel}]({rel})\n"));
            }
        }
    }
    s
}
