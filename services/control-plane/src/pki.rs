//! The control plane's keys and certificates: a CA, kube-apiserver's serving
//! certificate (for `127.0.0.1` and `localhost`) and the service-account signing
//! key. Generated once per data directory and reused after, so a restarted
//! control plane keeps the CA every kubeconfig already trusts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Paths of the PEM files in a PKI directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

const FILES: [&str; 5] = [
    "ca.crt",
    "apiserver.crt",
    "apiserver.key",
    "sa.key",
    "sa.pub",
];

impl Pki {
    /// The PKI in `dir`, generated first when any file is missing.
    pub fn ensure(dir: &Path) -> anyhow::Result<Self> {
        let pki = Self {
            dir: dir.to_path_buf(),
        };
        if FILES.iter().all(|f| dir.join(f).is_file()) {
            return Ok(pki);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (file, pem) in generate()? {
            let path = dir.join(file);
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(pki)
    }

    /// The CA certificate (PEM) that signs the serving certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// kube-apiserver's serving certificate.
    pub fn serving_cert(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }

    /// kube-apiserver's serving key.
    pub fn serving_key(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }

    /// The private key service-account tokens are signed with.
    pub fn service_account_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    /// Its public half, which kube-apiserver verifies tokens with.
    pub fn service_account_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// The CA certificate's PEM text (for a kubeconfig's `certificate-authority-data`).
    pub fn ca_pem(&self) -> anyhow::Result<String> {
        let path = self.ca_cert();
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Every file of a new PKI, as (file name, PEM).
fn generate() -> anyhow::Result<Vec<(&'static str, String)>> {
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "wfe-control-plane-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;
    let issuer = Issuer::new(ca, &ca_key);

    let serving_key = KeyPair::generate().context("generating the serving key")?;
    // The names a client on this machine may dial, plus the in-cluster service's.
    let names = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "10.0.0.1",
    ];
    let mut serving = CertificateParams::new(names.map(str::to_owned).to_vec())?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let serving_cert = serving
        .signed_by(&serving_key, &issuer)
        .context("signing the serving certificate")?;

    let sa_key = KeyPair::generate().context("generating the service-account key")?;
    Ok(vec![
        ("ca.crt", ca_cert.pem()),
        ("apiserver.crt", serving_cert.pem()),
        ("apiserver.key", serving_key.serialize_pem()),
        ("sa.key", sa_key.serialize_pem()),
        ("sa.pub", sa_key.public_key_pem()),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::ensure(dir.path()).unwrap().ca_pem().unwrap();
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
        let again = Pki::ensure(dir.path()).unwrap().ca_pem().unwrap();
        assert_eq!(first, again, "a second ensure keeps the CA");
        std::fs::remove_file(dir.path().join("sa.pub")).unwrap();
        let regenerated = Pki::ensure(dir.path()).unwrap().ca_pem().unwrap();
        assert_ne!(first, regenerated, "a partial PKI is generated anew");
    }
}
