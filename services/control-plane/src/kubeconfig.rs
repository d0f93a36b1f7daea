//! kubeconfig files for clients of the control plane: HTTPS, the CA inline, a
//! bearer token from kube-apiserver's token file.

use base64::Engine;

/// A kubeconfig for `server` (`https://127.0.0.1:6443`) trusting `ca_pem`, as `token`,
/// with `namespace` as the default namespace.
pub fn render(server: &str, ca_pem: &str, token: &str, namespace: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: wfe\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: wfe\n  user:\n    token: {token}\n\
         contexts:\n- name: wfe\n  context:\n    cluster: wfe\n    user: wfe\n    namespace: {namespace}\n\
         current-context: wfe\n"
    )
}

/// A kube-rs client from the kubeconfig file at `path` (its current context).
pub async fn client(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// One line of kube-apiserver's `--token-auth-file`: `token,user,uid,"group1,group2"`.
pub fn token_line(token: &str, user: &str, uid: &str, groups: &[&str]) -> String {
    format!("{token},{user},{uid},\"{}\"\n", groups.join(","))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_kubeconfig_kube_rs_reads() {
        let text = render("https://127.0.0.1:6443", "PEM", "t0ken", "kubernaut-system");
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("UEVN"));
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
    }

    #[test]
    fn token_lines_quote_the_groups() {
        assert_eq!(
            token_line("t", "u", "1", &["system:masters", "g"]),
            "t,u,1,\"system:masters,g\"\n"
        );
    }
}
