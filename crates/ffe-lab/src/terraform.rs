//! The real `terraform` binary with this workspace's provider, for lab tests outside the
//! provider crate (which installs it from `CARGO_BIN_EXE_terraform-provider-ffe` instead): the
//! built `target/<profile>/terraform-provider-ffe` is copied into the root module's
//! `terraform.d/plugins/registry.terraform.io/three-rivers-tech/ffe/0.1.0/<os_arch>/`, the
//! implicit local mirror `terraform init` searches, so nothing is downloaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROVIDER: &str = "terraform-provider-ffe";
/// Must match `required_providers` in the root modules the tests write.
pub const PROVIDER_VERSION: &str = "0.1.0";

/// Errors of the Terraform helper.
#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error("{PROVIDER} not built: {0}; run `cargo build -p terraform-provider-ffe` first")]
    ProviderMissing(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("terraform version -json: {0}")]
    Version(String),
    #[error("terraform {step} of module {module} failed: {output}")]
    Render {
        step: String,
        module: String,
        output: String,
    },
}

/// `$FFE_PROVIDER_BIN` if set, else the first `terraform-provider-ffe` found walking up from the
/// current executable (a test binary lives in `target/debug/deps/`).
pub fn provider_binary() -> Result<PathBuf, TerraformError> {
    if let Some(p) = std::env::var_os("FFE_PROVIDER_BIN").map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(TerraformError::ProviderMissing(format!(
                "$FFE_PROVIDER_BIN={}",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|source| TerraformError::Io {
        what: "current_exe".into(),
        source,
    })?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|d| d.join(PROVIDER))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            TerraformError::ProviderMissing(format!(
                "looked in $FFE_PROVIDER_BIN and the directories above {}",
                exe.display()
            ))
        })
}

/// A `terraform` command in `dir` with the lab's environment (no CLI config, no checkpoint).
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new("terraform");
    c.current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1");
    c
}

/// Terraform's `os_arch` name of this machine, from `terraform version -json`.
pub fn platform() -> Result<String, TerraformError> {
    let out: Output = command(Path::new("/"))
        .args(["version", "-json"])
        .output()
        .map_err(|source| TerraformError::Io {
            what: "spawn terraform".into(),
            source,
        })?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| TerraformError::Version(e.to_string()))?;
    v["platform"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| TerraformError::Version(format!("no platform in {v}")))
}

/// Copy the built provider into `dir`'s implicit local mirror.
pub fn install_provider(dir: &Path) -> Result<(), TerraformError> {
    let bin = provider_binary()?;
    let plugin = dir.join(format!(
        "terraform.d/plugins/registry.terraform.io/three-rivers-tech/ffe/{PROVIDER_VERSION}/{}",
        platform()?
    ));
    std::fs::create_dir_all(&plugin).map_err(|source| TerraformError::Io {
        what: format!("create {}", plugin.display()),
        source,
    })?;
    let dst = plugin.join(format!("{PROVIDER}_v{PROVIDER_VERSION}"));
    std::fs::copy(&bin, &dst).map_err(|source| TerraformError::Io {
        what: format!("copy {} to {}", bin.display(), dst.display()),
        source,
    })?;
    Ok(())
}

/// stdout + stderr with whitespace runs collapsed (Terraform wraps diagnostics at ~78 columns).
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ")
}

/// The outputs of a pure rendering module (no providers, no resources: variables in, text out)
/// for `arguments` (HCL `name = value` lines, as a module block takes them), through real
/// Terraform: a root module in a temporary directory calls it and is applied with local state;
/// returns every output of the module as `{name: value}` (sensitive ones included).
/// The module is referenced by a relative path: Terraform then uses it in place (an absolute
/// path would be copied into `.terraform/modules`, breaking the module's own `../` references).
pub fn render_module(
    module_dir: &Path,
    arguments: &str,
) -> Result<serde_json::Value, TerraformError> {
    let io = |what: String| move |source| TerraformError::Io { what, source };
    let module = module_dir
        .canonicalize()
        .map_err(io(format!("module {}", module_dir.display())))?;
    let root = tempfile::tempdir().map_err(io("temporary directory".into()))?;
    let root_path = root
        .path()
        .canonicalize()
        .map_err(io("temporary directory".into()))?;
    let up = "../".repeat(root_path.components().count().saturating_sub(1));
    let source = format!(
        "{up}{}",
        module.strip_prefix("/").unwrap_or(&module).display()
    );
    let main = format!(
        "module \"m\" {{\n  source = \"{source}\"\n{arguments}\n}}\n\noutput \"m\" {{\n  value     = module.m\n  sensitive = true\n}}\n"
    );
    std::fs::write(root_path.join("main.tf"), main).map_err(io("write main.tf".into()))?;
    let step = |args: &[&str]| -> Result<Output, TerraformError> {
        let out = command(&root_path)
            .args(args)
            .output()
            .map_err(io(format!("spawn terraform {}", args[0])))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(TerraformError::Render {
                step: args[0].to_string(),
                module: module.display().to_string(),
                output: text(&out),
            })
        }
    };
    step(&["init", "-input=false", "-no-color"])?;
    step(&["apply", "-auto-approve", "-input=false", "-no-color"])?;
    let out = step(&["output", "-json", "m"])?;
    serde_json::from_slice(&out.stdout).map_err(|e| TerraformError::Render {
        step: "output".into(),
        module: module.display().to_string(),
        output: e.to_string(),
    })
}
