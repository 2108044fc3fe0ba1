//! `ffe-validate`: validate Kubernetes manifests (files or a Terraform plan) offline.
//!
//! Exit status: 0 = no problem, 1 = problems found (one line each, then a summary),
//! 2 = validation could not run (bad arguments, missing tool or CRD directory).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ffe_validate::conformance::{self, Bundle};
use ffe_validate::upstream::Upstream;
use ffe_validate::values::ValuesPolicy;
use ffe_validate::{
    builtin, plan, psa, render, server_config, validate_sources, KubeVersion, Options, Problem,
    Source,
};

#[derive(Parser)]
#[command(name = "ffe-validate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// CRD directory (every CustomResourceDefinition below it is loaded); with --upstream, the
    /// k3s built-in CRDs only (the plan's own come from what it delivers)
    #[arg(long, default_value = "upstream/crds")]
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
        /// Upstream conformance against this `upstream/` directory (vendored charts at the pins):
        /// render every HelmChart, check values keys, versions, CRD delivery and order
        #[arg(long, value_name = "DIR")]
        upstream: Option<PathBuf>,
        /// `amtool` for rendered Alertmanager configuration
        #[arg(long, default_value = "amtool")]
        amtool: PathBuf,
        /// Write the CRDs the plan delivers (and the k3s built-ins) here, for other validations
        #[arg(long, value_name = "DIR")]
        write_crds: Option<PathBuf>,
        /// Files whose version mentions must agree with the pinned components
        #[arg(long = "mentions-in", value_name = "FILE", num_args = 1..)]
        mentions_in: Vec<PathBuf>,
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
    let (sources, problems, opts) = match cli.command {
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
            upstream,
            amtool,
            write_crds,
            mentions_in,
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
            let mut opts = options(&version, &common)?;
            let mut sources = planned.sources.clone();
            let mut problems = planned.problems.clone();
            if let Some(dir) = upstream {
                // the delivered CRDs go to --write-crds, else to a directory removed on exit
                let scratch = tempfile::tempdir().context("temporary directory")?;
                let crds_dir = write_crds.unwrap_or_else(|| scratch.path().to_path_buf());
                let (rendered, mut found) =
                    conformance_run(&planned, &dir, &opts, &amtool, &crds_dir, &mentions_in)?;
                sources.extend(rendered);
                problems.append(&mut found);
                opts.crds_dir = crds_dir;
                return finish(sources, problems, &opts, Some(scratch));
            }
            // Without --upstream no chart is rendered: RBAC of our own files only. Pod Security
            // (every workload's namespace) needs the charts' workloads too: --upstream only.
            let (docs, _) = ffe_validate::docs::load(&planned.sources);
            let objects: Vec<(String, serde_json::Value)> =
                docs.into_iter().map(|d| (d.file, d.value)).collect();
            problems.extend(ffe_validate::rbac::check(&objects, &[]));
            (sources, problems, opts)
        }
    };
    finish(sources, problems, &opts, None)
}

/// Validates the sources and prints the problems; `_scratch` lives until validation is done.
fn finish(
    sources: Vec<Source>,
    mut problems: Vec<Problem>,
    opts: &Options,
    _scratch: Option<tempfile::TempDir>,
) -> Result<bool> {
    let mut report = validate_sources(&sources, opts)?;
    problems.append(&mut report.problems);
    problems.sort();
    report.problems = problems;
    for problem in &report.problems {
        println!("{problem}");
    }
    println!("{}", report.summary());
    Ok(report.ok())
}

/// Upstream conformance of a plan; returns the rendered charts (to validate with ours), the
/// problems found and the directory of CRDs the plan delivers (plus k3s's built-ins).
fn conformance_run(
    planned: &plan::Planned,
    upstream_dir: &Path,
    opts: &Options,
    amtool: &Path,
    crds_dir: &Path,
    mentions_in: &[PathBuf],
) -> Result<(Vec<Source>, Vec<Problem>)> {
    let upstream = Upstream::open(upstream_dir)?;
    let policy = ValuesPolicy::load(&upstream_dir.join("values-policy.yaml"))?;
    let repo_root = upstream_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let amtool = which(amtool);
    let ctx = conformance::Context {
        upstream: &upstream,
        policy: &policy,
        helm: render::locate_helm(&repo_root),
        amtool,
        server_config: server_config::Checker::new(server_config::locate_bao(&repo_root)),
        kube_version: opts.kube_version.clone(),
    };
    let bundles: Vec<Bundle> = planned
        .bundle_sources
        .iter()
        .map(|(name, sources)| Bundle {
            name: name.clone(),
            sources: sources.clone(),
            after: planned.after.get(name).cloned().unwrap_or_default(),
            waits: planned.waits.get(name).cloned().unwrap_or_default(),
        })
        .collect();
    let outcome = conformance::check(&bundles, &ctx)?;
    let mut problems = outcome.problems;
    // the whole plan's workloads against the namespaces' Pod Security levels, exemptions as the
    // API server is given them (k3s CIS profile)
    problems.extend(psa::check(
        &outcome.objects,
        ffe_core::k3s::config::PSA_EXEMPT_NAMESPACES,
    ));
    problems.extend(conformance::check_version_mentions(
        &repo_root,
        mentions_in,
        &outcome.charts,
        &outcome.images,
    ));
    let dir = crds_dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, crd) in outcome.delivered_crds.iter().enumerate() {
        let name = crd
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("crd");
        std::fs::write(
            dir.join(format!("{i:03}-{name}.json")),
            serde_json::to_vec(crd)?,
        )?;
    }
    copy_yaml_tree(&opts.crds_dir, &dir.join("k3s"))?;
    eprintln!(
        "ffe-validate: upstream conformance: {} chart(s) rendered ({}), {} CRD(s) delivered",
        outcome.charts.len(),
        outcome
            .charts
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join(", "),
        outcome.delivered_crds.len()
    );
    for line in ctx.server_config.summary() {
        eprintln!("ffe-validate: {line}");
    }
    Ok((outcome.rendered, problems))
}

fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn copy_yaml_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_yaml_tree(&path, &target)?;
        } else if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
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
