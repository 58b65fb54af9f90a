//! Images: `gantry registries` (a project's registry logins), `gantry
//! stacks` (named base images), `gantry packages` (code packages) over the
//! API; `gantry images warm|export|import` on this machine's engine (a new
//! worker can boot with every stack and no registry), `gantry images list`
//! over the API; and the worker's image flags.

use crate::client::Client;
use crate::commands::enc;
use crate::output;
use crate::Global;
use anyhow::Context;
use clap::{Args, Subcommand};
use gantry_runtime::{ContainerRuntime, DockerRuntime};
use gantry_wire::{
    ImageList, PackageList, PackageView, RegistryList, RegistryView, StackList, StackView,
};
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;

/// A worker's image settings.
#[derive(Args, Clone, Debug)]
pub struct ImageArgs {
    /// A registry mirror (host[:port]) tried before an image's own registry,
    /// in the order given (repeat the flag, or a comma-separated list).
    #[arg(
        long = "registry-mirror",
        env = "GANTRY_REGISTRY_MIRROR",
        value_delimiter = ','
    )]
    pub registry_mirror: Vec<String>,
    /// An image to keep present: pulled at start and every minute when
    /// missing, never removed by the image GC (repeat, or comma-separated).
    #[arg(long = "warm-image", env = "GANTRY_WARM_IMAGE", value_delimiter = ',')]
    pub warm_image: Vec<String>,
    /// Allow `build.git` URLs with the file:// scheme (off: a spec could
    /// otherwise build from any repository on this machine).
    #[arg(long, env = "GANTRY_GIT_ALLOW_FILE")]
    pub git_allow_file: bool,
    /// Remove images Gantry pulled or built once they add up past this size
    /// (e.g. 20g), least recently used first; off unless given.
    #[arg(long, env = "GANTRY_IMAGE_BUDGET", value_parser = crate::parse_size)]
    pub image_budget: Option<u64>,
    /// Only images no job used for this long (default 7 days) are removed by the image GC.
    #[arg(long, env = "GANTRY_IMAGE_IDLE", default_value = "168h", value_parser = crate::parse_duration)]
    pub image_idle: std::time::Duration,
}

impl ImageArgs {
    pub fn config(&self) -> gantry_worker::images::ImageConfig {
        gantry_worker::images::ImageConfig {
            mirrors: self.registry_mirror.clone(),
            warm: self.warm_image.clone(),
            git_allow_file: self.git_allow_file,
            budget: self.image_budget,
            idle: self.image_idle,
        }
    }
}

#[derive(Subcommand)]
pub enum RegistriesCommand {
    /// Store the project's login to a private registry (the password is read
    /// from stdin, sealed at rest, never shown again); used only for pulls
    /// of images on that host by this project's jobs.
    Add {
        /// The registry host as in image names, e.g. registry.example or 127.0.0.1:5000.
        host: String,
        #[arg(long)]
        username: String,
        /// Read the password from stdin (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// The project's registry logins (hosts and user names; never passwords).
    List,
    /// Forget the project's login to a host.
    Remove { host: String },
}

#[derive(Subcommand)]
pub enum StacksCommand {
    /// Register (or repoint) a stack: a named base image code packages run on (admin).
    Add { name: String, image: String },
    /// The stacks and their images.
    List,
    /// Remove a stack (admin).
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum PackagesCommand {
    /// Upload a zip or tar.gz of code as the next revision of package NAME.
    /// Run it with `code: {package: NAME[@REV], stack: STACK}` in a spec.
    Upload { name: String, file: PathBuf },
    /// Every revision of every package of the project.
    List,
}

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Pull images into this machine's engine ahead of need (mirrors first).
    Warm {
        #[arg(required = true)]
        images: Vec<String>,
        /// A registry mirror (host[:port]) tried before the image's own registry.
        #[arg(long = "registry-mirror", value_delimiter = ',')]
        registry_mirror: Vec<String>,
    },
    /// Write images of this machine's engine to one bundle file.
    Export {
        file: PathBuf,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load a bundle written by `gantry images export` into this machine's engine.
    Import { file: PathBuf },
    /// What the workers hold for Gantry: sizes, last use, warm (admin).
    List,
    /// Put images on the fleet's warm list: every worker pulls them (at
    /// start and every minute) and never collects them (admin).
    Keep {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Take images off the fleet's warm list (admin).
    Unkeep {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

/// A list answer: JSON as the server sent it, or a table of its rows.
fn print<T: serde::Serialize>(
    g: &Global,
    whole: &impl serde::Serialize,
    rows: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    output::print(g, whole, |_| {
        output::table(headers, &rows.iter().map(row).collect::<Vec<_>>())
    });
}

/// One object: JSON, or its fields a line each.
fn show(g: &Global, v: &impl serde::Serialize) {
    output::print(g, v, |v| {
        if let Ok(Value::Object(m)) = serde_json::to_value(v) {
            for (k, val) in m {
                println!("{k}: {}", output::s(&val));
            }
        }
    });
}

pub async fn registries(g: &Global, cmd: RegistriesCommand) -> anyhow::Result<u8> {
    let api = Client::new(g)?;
    match cmd {
        RegistriesCommand::Add { host, username, .. } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            let v: RegistryView = api
                .post_as(
                    "/v1/registries",
                    &json!({"host": host, "username": username, "password": password}),
                )
                .await?;
            show(g, &v);
        }
        RegistriesCommand::List => {
            let v: RegistryList = api.get_as("/v1/registries").await?;
            print(
                g,
                &v,
                &v.registries,
                &["HOST", "USERNAME", "CREATED"],
                |r| vec![r.host.clone(), r.username.clone(), r.created_at.clone()],
            );
        }
        RegistriesCommand::Remove { host } => {
            api.delete(&format!("/v1/registries/{}", enc(&host)))
                .await?;
        }
    }
    Ok(0)
}

pub async fn stacks(g: &Global, cmd: StacksCommand) -> anyhow::Result<u8> {
    let api = Client::new(g)?;
    match cmd {
        StacksCommand::Add { name, image } => {
            let v: StackView = api
                .post_as("/v1/stacks", &json!({"name": name, "image": image}))
                .await?;
            show(g, &v);
        }
        StacksCommand::List => {
            let v: StackList = api.get_as("/v1/stacks").await?;
            print(g, &v, &v.stacks, &["NAME", "IMAGE", "CREATED"], |r| {
                vec![r.name.clone(), r.image.clone(), r.created_at.clone()]
            });
        }
        StacksCommand::Remove { name } => {
            api.delete(&format!("/v1/stacks/{}", enc(&name))).await?;
        }
    }
    Ok(0)
}

pub async fn packages(g: &Global, cmd: PackagesCommand) -> anyhow::Result<u8> {
    let api = Client::new(g)?;
    match cmd {
        PackagesCommand::Upload { name, file } => {
            let bytes = tokio::fs::read(&file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?;
            let v: PackageView = serde_json::from_value(
                api.post_stream(&format!("/v1/packages/{}", enc(&name)), bytes.into())
                    .await?,
            )
            .context("the server's answer is not a package revision")?;
            show(g, &v);
        }
        PackagesCommand::List => {
            let v: PackageList = api.get_as("/v1/packages").await?;
            print(
                g,
                &v,
                &v.packages,
                &["NAME", "REV", "SIZE", "SHA256", "CREATED"],
                |r| {
                    vec![
                        r.name.clone(),
                        r.rev.to_string(),
                        r.size.to_string(),
                        r.sha256.chars().take(12).collect(),
                        r.created_at.clone(),
                    ]
                },
            );
        }
    }
    Ok(0)
}

async fn engine() -> anyhow::Result<DockerRuntime> {
    DockerRuntime::connect()
        .await
        .context("cannot reach the container engine")
}

pub async fn images(g: &Global, cmd: ImagesCommand) -> anyhow::Result<u8> {
    match cmd {
        ImagesCommand::Warm {
            images,
            registry_mirror,
        } => {
            let rt = engine().await?;
            let mut failed = 0;
            for image in &images {
                match warm_one(&rt, image, &registry_mirror).await {
                    Ok(how) => println!("{image}: {how}"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{image}: {e}");
                    }
                }
            }
            Ok(u8::from(failed > 0))
        }
        ImagesCommand::Export { file, images } => {
            let rt = engine().await?;
            let bytes = rt.export_images(&images, &file).await?;
            println!(
                "wrote {} images ({bytes} bytes) to {}",
                images.len(),
                file.display()
            );
            Ok(0)
        }
        ImagesCommand::Import { file } => {
            let rt = engine().await?;
            for line in rt.import_images(&file).await? {
                println!("{line}");
            }
            Ok(0)
        }
        ImagesCommand::Keep { images } => {
            let api = Client::new(g)?;
            for image in images {
                api.post("/v1/images/keep", &json!({"image": image}))
                    .await?;
            }
            Ok(0)
        }
        ImagesCommand::Unkeep { images } => {
            let api = Client::new(g)?;
            for image in images {
                api.delete(&format!("/v1/images/keep?image={}", enc(&image)))
                    .await?;
            }
            Ok(0)
        }
        ImagesCommand::List => {
            let api = Client::new(g)?;
            let v: ImageList = api.get_as("/v1/images").await?;
            print(
                g,
                &v,
                &v.images,
                &["WORKER", "REFERENCE", "KIND", "SIZE", "WARM", "LAST USED"],
                |r| {
                    vec![
                        r.worker.to_string(),
                        r.reference.clone(),
                        r.kind.clone(),
                        r.size.to_string(),
                        r.warm.to_string(),
                        r.last_used.clone(),
                    ]
                },
            );
            Ok(0)
        }
    }
}

/// Pulls one image unless present: mirrors first, then its registry.
async fn warm_one(rt: &DockerRuntime, image: &str, mirrors: &[String]) -> anyhow::Result<String> {
    if rt.held_image(image).await?.is_some() {
        return Ok("present".into());
    }
    let quiet = |_: String| {};
    let path = match image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => image,
    };
    let origin = gantry_runtime::registry_host(image);
    for m in mirrors.iter().filter(|m| **m != origin) {
        let mirrored = format!("{m}/{path}");
        if rt.pull_with(&mirrored, None, &quiet).await.is_ok() {
            rt.tag(&mirrored, image).await?;
            let _ = rt.remove_image(&mirrored).await;
            return Ok(format!("pulled from mirror {m}"));
        }
    }
    rt.pull_with(image, None, &quiet).await?;
    Ok("pulled".into())
}
