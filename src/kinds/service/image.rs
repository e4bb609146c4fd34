//! Images followed by digest: a container image whose tag can move (an ECR image in a
//! MUTABLE repository, or any ECR image with `imageUpdate: digest`) is resolved to the
//! digest the tag names now, and the task definition runs `repo@sha256:…`. A push of the
//! same tag therefore renders another task definition: a new revision and a deploy.
//!
//! Reads: one `ecr:BatchGetImage` per repository per pass, for every tag the set's services
//! follow in it, through the pass cache (two services on one repository cost one call).
//! BatchGetImage answers a missing tag as a failure of that tag alone, so one missing tag
//! does not hide the others (DescribeImages would fail the whole call).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aws::AwsError;
use crate::kinds::repository::spec::TagMutability;
use crate::manifest::{Manifest, ServiceSpec};
use crate::reconcile::{Cx, ReconcileError};

use super::spec::{ContainerSpec, ImageUpdate};

/// BatchGetImage takes at most 100 image IDs per call.
const BATCH: usize = 100;

/// The manifest types asked for: every type ECR stores, so that ECR returns each image as
/// pushed (no conversion) and the digest is the one a pull by tag resolves to.
const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// An image reference in a private ECR registry, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com`.
    pub host: String,
    /// The registry (account) ID.
    pub registry: String,
    /// The registry's region.
    pub region: String,
    /// The repository name (may hold slashes).
    pub repository: String,
    /// The tag, if the reference has one.
    pub tag: Option<String>,
    /// The digest, if the reference has one (`sha256:…`).
    pub digest: Option<String>,
}

impl EcrImage {
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/NAME[:TAG][@DIGEST]`, or `None` for
    /// an image elsewhere (Docker Hub, ECR Public, another registry).
    pub fn parse(image: &str) -> Option<EcrImage> {
        let (host, rest) = image.split_once('/')?;
        let suffix = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
        let (registry, region) = suffix.split_once(".dkr.ecr.")?;
        if registry.len() != 12
            || !registry.bytes().all(|b| b.is_ascii_digit())
            || region.is_empty()
            || region.contains('.')
        {
            return None;
        }
        let (name_tag, digest) = match rest.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (rest, None),
        };
        let last = name_tag.rsplit('/').next().unwrap_or(name_tag);
        let (repository, tag) = match last.rsplit_once(':') {
            Some((_, tag)) => (
                &name_tag[..name_tag.len() - tag.len() - 1],
                Some(tag.to_string()),
            ),
            None => (name_tag, None),
        };
        if repository.is_empty() {
            return None;
        }
        Some(EcrImage {
            host: host.to_string(),
            registry: registry.to_string(),
            region: region.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// `host/repository`, the reference without tag or digest.
    pub fn base(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

/// An image a service follows by digest: where, and which tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// The image (its tag is `tag`).
    pub image: EcrImage,
    /// The tag followed (`latest` when the reference has none).
    pub tag: String,
}

impl Tracked {
    /// The reference the task definition runs for `digest`: `repo@sha256:…`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.image.base())
    }
}

/// Whether, by the manifest alone, an image is followed by digest: `imageUpdate` if set,
/// else unless its repository is IMMUTABLE (`None`: not known from the manifest).
fn follows(update: Option<ImageUpdate>, mutability: Option<TagMutability>) -> bool {
    match update {
        Some(ImageUpdate::Digest) => true,
        Some(ImageUpdate::Tag) => false,
        None => mutability != Some(TagMutability::IMMUTABLE),
    }
}

/// The image the service's container follows by digest, or `None` when it runs its tag as
/// written (`imageUpdate: tag`, an IMMUTABLE repository, an image outside ECR, a digest
/// already in the reference). The mutability is the `Repository` manifest's when one
/// manages the repository (what git says, not what someone set by hand), else ECR's.
pub async fn tracked(
    cx: &Cx<'_>,
    m: &Manifest<ServiceSpec>,
) -> Result<Option<Tracked>, ReconcileError> {
    tracked_container(cx, &m.spec.task_definition.container).await
}

/// [`tracked`] for any container of a service (its own or a sidecar).
pub async fn tracked_container(
    cx: &Cx<'_>,
    c: &ContainerSpec,
) -> Result<Option<Tracked>, ReconcileError> {
    if c.image_update == Some(ImageUpdate::Tag) {
        return Ok(None);
    }
    let image = match (&c.image, &c.repository, &c.tag) {
        (Some(image), _, _) => image.clone(),
        (None, Some(repository), Some(tag)) => {
            crate::kinds::repository::image_uri(cx, repository, tag).await?
        }
        _ => return Ok(None),
    };
    let Some(parsed) = EcrImage::parse(&image) else {
        return Ok(None);
    };
    if parsed.digest.is_some() {
        return Ok(None);
    }
    if parsed.region != cx.aws().region {
        if c.image_update == Some(ImageUpdate::Digest) {
            return Err(ReconcileError::Resolve {
                what: format!("the digest of {image}"),
                message: format!(
                    "the image is in {}, and mooring reads ECR in {} only; pin the digest in `image`, or set `imageUpdate: tag`",
                    parsed.region,
                    cx.aws().region
                ),
            });
        }
        return Ok(None);
    }
    let declared = cx
        .set
        .repositories
        .iter()
        .find(|r| r.spec.aws_name(&r.metadata) == parsed.repository)
        .map(|r| r.spec.image_tag_mutability);
    let mutability = match declared {
        Some(d) => Some(d),
        None if c.image_update.is_none() => {
            let listed = crate::kinds::repository::repositories(cx).await?;
            listed
                .iter()
                .find(|r| {
                    r.repository_name() == Some(parsed.repository.as_str())
                        && r.registry_id() == Some(parsed.registry.as_str())
                })
                .and_then(|r| r.image_tag_mutability())
                .map(|t| {
                    if t.as_str().starts_with("IMMUTABLE") {
                        TagMutability::IMMUTABLE
                    } else {
                        TagMutability::MUTABLE
                    }
                })
        }
        None => None,
    };
    if !follows(c.image_update, mutability) {
        return Ok(None);
    }
    let tag = parsed.tag.clone().unwrap_or_else(|| "latest".to_string());
    Ok(Some(Tracked { image: parsed, tag }))
}

/// Tag → digest (or why ECR has none) in one repository.
pub type Digests = Arc<BTreeMap<String, Result<String, String>>>;

/// The digest `t.tag` names now. Every tag the set's services follow in the same repository
/// is read in the same call, once per pass.
pub async fn digest(cx: &Cx<'_>, t: &Tracked) -> Result<String, ReconcileError> {
    let key = (t.image.registry.clone(), t.image.repository.clone());
    let found = cx
        .cache
        .ecr_digests
        .get(key, || read(cx, t))
        .await
        .map_err(|e| ReconcileError::Resolve {
            what: format!("the digest of {}:{}", t.image.base(), t.tag),
            message: format!(
                "{e}; the running revision is kept (set `imageUpdate: tag` to run the tag as written)"
            ),
        })?;
    match found.get(&t.tag) {
        Some(Ok(digest)) => Ok(digest.clone()),
        Some(Err(reason)) => Err(ReconcileError::requirement(format!(
            "image {}:{}: ECR has no image tagged `{}` in the repository {} ({reason}); push it, or change the tag. The running revision is kept",
            t.image.base(),
            t.tag,
            t.tag,
            t.image.repository
        ))),
        None => Err(ReconcileError::requirement(format!(
            "image {}:{}: the tag was not read in this pass; the running revision is kept",
            t.image.base(),
            t.tag
        ))),
    }
}

/// BatchGetImage for every tag the set's services follow in `t`'s repository.
async fn read(cx: &Cx<'_>, t: &Tracked) -> Result<Digests, AwsError> {
    let mut tags = vec![t.tag.clone()];
    for m in &cx.set.services {
        for (_, c) in m.spec.containers() {
            if let Ok(Some(other)) = Box::pin(tracked_container(cx, c)).await
                && other.image.registry == t.image.registry
                && other.image.repository == t.image.repository
            {
                tags.push(other.tag);
            }
        }
    }
    tags.sort();
    tags.dedup();
    let mut out: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    for chunk in tags.chunks(BATCH) {
        let ids = chunk
            .iter()
            .map(|tag| {
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(tag)
                    .build()
            })
            .collect();
        let got = cx
            .aws()
            .ecr
            .batch_get_image()
            .registry_id(&t.image.registry)
            .repository_name(&t.image.repository)
            .set_image_ids(Some(ids))
            .set_accepted_media_types(Some(MEDIA_TYPES.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecr:BatchGetImage", e))?;
        for image in got.images() {
            if let Some(id) = image.image_id()
                && let (Some(tag), Some(digest)) = (id.image_tag(), id.image_digest())
            {
                out.insert(tag.to_string(), Ok(digest.to_string()));
            }
        }
        for f in got.failures() {
            if let Some(tag) = f.image_id().and_then(|i| i.image_tag()) {
                let reason = f
                    .failure_reason()
                    .or(f.failure_code().map(|c| c.as_str()))
                    .unwrap_or("no reason given");
                out.entry(tag.to_string())
                    .or_insert_with(|| Err(reason.to_string()));
            }
        }
    }
    for tag in tags {
        out.entry(tag).or_insert_with(|| Err("not found".to_string()));
    }
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_references_are_taken_apart() {
        let i = EcrImage::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api:latest")
            .unwrap();
        assert_eq!(i.registry, "123456789012");
        assert_eq!(i.region, "eu-west-1");
        assert_eq!(i.repository, "team/api");
        assert_eq!(i.tag.as_deref(), Some("latest"));
        assert_eq!(i.digest, None);
        assert_eq!(
            i.base(),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api"
        );
        let pinned = EcrImage::parse(
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/api@sha256:abc",
        )
        .unwrap();
        assert_eq!(pinned.repository, "api");
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.digest.as_deref(), Some("sha256:abc"));
        let bare = EcrImage::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/api").unwrap();
        assert_eq!((bare.repository.as_str(), bare.tag), ("api", None));
        for other in [
            "nginx:1.27",
            "public.ecr.aws/nginx/nginx:1.27",
            "ghcr.io/org/app:1",
            "12345.dkr.ecr.eu-west-1.amazonaws.com/api:1",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/",
        ] {
            assert_eq!(EcrImage::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_default_follows_mutable_tags_only() {
        assert!(follows(None, None), "unknown mutability: followed");
        assert!(follows(None, Some(TagMutability::MUTABLE)));
        assert!(!follows(None, Some(TagMutability::IMMUTABLE)));
        assert!(follows(
            Some(ImageUpdate::Digest),
            Some(TagMutability::IMMUTABLE)
        ));
        assert!(!follows(Some(ImageUpdate::Tag), Some(TagMutability::MUTABLE)));
    }

    #[test]
    fn digest_is_refused_for_an_image_outside_ecr() {
        let service = |container: &str| {
            format!(
                "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: prd}}\nspec: {{}}\n---\napiVersion: mooring.dev/v1alpha1\nkind: Service\nmetadata: {{name: api}}\nspec:\n  cluster: prd\n  network: {{subnets: {{ids: [subnet-1]}}, securityGroups: {{ids: [sg-1]}}}}\n  taskDefinition: {{cpu: 256, memory: 512, container: {container}}}\n"
            )
        };
        let load = |c: &str| crate::manifest::load::load_with_stack(&[("s.yaml".into(), service(c))]);
        let errs = match load("{image: 'nginx:1.27', imageUpdate: digest}") {
            Ok(_) => panic!("digest on Docker Hub accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            errs.contains("imageUpdate: `digest` follows images in ECR, and `nginx:1.27` is not an ECR image"),
            "{errs}"
        );
        assert!(load("{image: 'nginx:1.27', imageUpdate: tag}").is_ok());
        assert!(
            load("{image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:latest', imageUpdate: digest}")
                .is_ok()
        );
    }

    #[test]
    fn a_tracked_image_is_pinned_to_its_digest() {
        let t = Tracked {
            image: EcrImage::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:latest")
                .unwrap(),
            tag: "latest".into(),
        };
        assert_eq!(
            t.pinned("sha256:aaa"),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api@sha256:aaa"
        );
    }
}
