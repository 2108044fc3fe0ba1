//! `ffe-validate`: validate Kubernetes manifests (files or a Terraform plan) offline.
//!
//! Exit status: 0 = no problem, 1 = problems found (one line each, then a summary),
//! 2 = validation could not run (bad arguments, missing tool or CRD directory).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ffe_validate::{builtin, plan, validate_sources, KubeVersion, Options, Problem, Source};

#[derive(Parser)]
#[command(name = "ffe-validate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// CRD directory (every CustomResourceDefinition below it is loaded)
    #[arg(long, default_value = "../shared/crds")]
    crds: PathBuf,
    /// CHART=PATH: validate HelmChart valuesContent of CHART against PATH (values.schema.json)
    #[arg(long = "values-schema", value_name = "CHART=PATH")]
    values_schema: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate YAML files (multi-document; `-` = stdin)
    Manifests {
        /// Kubernetes version for the built-in schemas, e.g. 1.33 or v1.29
        #[arg(long, default_value = "1.33")]
        kube_version: String,
        #[command(flatten)]
        common: Common,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Validate every planned `ffe_manifests` resource of `terraform show -json PLANFILE`
    TerraformPlan {
        #[arg(long, value_name = "FILE")]
        plan_json: PathBuf,
        /// Default: the plan's `kubernetes_version` variable, else 1.33
        #[arg(long)]
        kube_version: Option<String>,
        /// Bundle names the plan must hold (an `ffe_manifests` resource with that `bundle`)
        #[arg(
            long = "expect-bundles",
            value_name = "NAME,...",
            value_delimiter = ','
        )]
        expect_bundles: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
}

fn options(kube_version: &str, common: &Common) -> Result<Options> {
    let mut values_schemas = BTreeMap::new();
    for spec in &common.values_schema {
        let Some((chart, path)) = spec.split_once('=') else {
            bail!("--values-schema {spec:?}: expected CHART=PATH");
        };
        values_schemas.insert(chart.to_string(), PathBuf::from(path));
    }
    Ok(Options {
        kube_version: KubeVersion::parse(kube_version)?,
        crds_dir: common.crds.clone(),
        values_schemas,
        kubernetes_validate: builtin::locate()?,
    })
}

fn run(cli: Cli) -> Result<bool> {
    let (sources, mut problems, opts) = match cli.command {
        Command::Manifests {
            kube_version,
            common,
            files,
        } => {
            let mut sources = Vec::new();
            for file in &files {
                if file.as_os_str() == "-" {
                    let mut content = String::new();
                    std::io::stdin()
                        .read_to_string(&mut content)
                        .context("reading stdin")?;
                    sources.push(Source::new("-", content));
                } else {
                    sources.push(Source::read(file)?);
                }
            }
            (sources, Vec::new(), options(&kube_version, &common)?)
        }
        Command::TerraformPlan {
            plan_json,
            kube_version,
            expect_bundles,
            common,
        } => {
            let text = std::fs::read_to_string(&plan_json)
                .with_context(|| format!("reading {}", plan_json.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", plan_json.display()))?;
            let mut planned = plan::extract(&json)?;
            planned.expect_bundles(&expect_bundles);
            let version = kube_version
                .or(planned.kubernetes_version.clone())
                .unwrap_or_else(|| "1.33".into());
            let names: Vec<&str> = planned.bundles.keys().map(String::as_str).collect();
            eprintln!(
                "ffe-validate: {} {} resource(s) [bundles {}], {} file(s) in {}",
                planned.resources(),
                plan::RESOURCE_TYPE,
                names.join(", "),
                planned.sources.len(),
                plan_json.display()
            );
            (
                planned.sources,
                planned.problems,
                options(&version, &common)?,
            )
        }
    };
    let mut report = validate_sources(&sources, &opts)?;
    problems.append(&mut report.problems);
    problems.sort();
    report.problems = problems;
    for problem in &report.problems {
        println!("{problem}");
    }
    println!("{}", report.summary());
    Ok(report.ok())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let problem = Problem::file("ffe-validate", format!("{e:#}"));
            eprintln!("{problem}");
            ExitCode::from(2)
        }
    }
}
