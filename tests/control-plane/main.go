// Command kubecp is a multi-call binary holding a real Kubernetes control
// plane: etcd, kube-apiserver and kube-controller-manager, built from the
// upstream Go modules at the versions go.mod pins, and kubectl of the same
// release (for machines whose kubectl is missing or older). The e2e suite, `wfe dev
// --backend real` and wfe-bench run each as its own process of this one
// binary (`kubecp etcd ...`, `kubecp kube-apiserver ...`), because in one
// process they would share global flags, logging and feature gates.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/etcdmain"
	// Client auth plugins, as upstream's kubectl main imports them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	jobcontroller "k8s.io/kubernetes/pkg/controller/job"
)

const usage = `usage: kubecp COMMAND [FLAGS]

Commands (each the upstream program, with its own flags):
  etcd                      go.etcd.io/etcd/server/v3 etcdmain
  kube-apiserver            k8s.io/kubernetes/cmd/kube-apiserver
  kube-controller-manager   k8s.io/kubernetes/cmd/kube-controller-manager
  kubectl                   k8s.io/kubernetes/cmd/kubectl
  version                   the Kubernetes version this binary was built from

The binary may also be invoked through a symlink named after a command.
`

func main() {
	exitWithParent()
	command, args := splitCommand(os.Args)
	switch command {
	case "etcd":
		// etcdmain parses os.Args itself: hand it "etcd FLAGS".
		etcdmain.Main(append([]string{"etcd"}, args...))
	case "kube-apiserver":
		os.Args = append([]string{"kube-apiserver"}, args...)
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		tuneJobBackoff()
		os.Args = append([]string{"kube-controller-manager"}, args...)
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kubectl":
		os.Args = append([]string{"kubectl"}, args...)
		// As upstream's main: verbosity before the command is built.
		logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) // nolint:errcheck
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	case "version":
		fmt.Println(gitVersion)
	default:
		fmt.Fprint(os.Stderr, usage)
		if command != "" && command != "help" && command != "-h" && command != "--help" {
			fmt.Fprintf(os.Stderr, "\nunknown command %q\n", command)
		}
		os.Exit(2)
	}
}

// exitWithParent ends this process when the process that started it is
// gone (KUBECP_EXIT_WITH_PARENT=1), so a supervisor killed with SIGKILL
// leaves no etcd or kube-apiserver behind holding its ports. The parent is
// polled: PR_SET_PDEATHSIG would fire when the parent's spawning thread
// ends, which in a multi-threaded parent happens long before the parent does.
func exitWithParent() {
	if os.Getenv("KUBECP_EXIT_WITH_PARENT") != "1" {
		return
	}
	parent := os.Getppid()
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() != parent {
				fmt.Fprintln(os.Stderr, "kubecp: parent process exited; exiting too")
				os.Exit(1)
			}
		}
	}()
}

// gitVersion is set by the build script's ldflags, as upstream's release
// build sets k8s.io/component-base/version.gitVersion.
var gitVersion = "unknown"

// splitCommand takes the command from the name the binary was invoked as
// (a symlink called kube-apiserver) or else from the first argument.
func splitCommand(argv []string) (string, []string) {
	switch name := filepath.Base(argv[0]); name {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kubectl":
		return name, argv[1:]
	}
	if len(argv) < 2 {
		return "", nil
	}
	return argv[1], argv[2:]
}

// tuneJobBackoff lets a test shorten the Job controller's pod-failure
// backoff (10 s doubling to 6 min upstream, a package variable with no flag,
// which upstream's own integration tests lower the same way).
// KUBECP_JOB_POD_FAILURE_BACKOFF unset keeps upstream's value.
func tuneJobBackoff() {
	value := os.Getenv("KUBECP_JOB_POD_FAILURE_BACKOFF")
	if value == "" {
		return
	}
	backoff, err := time.ParseDuration(value)
	if err != nil || backoff <= 0 {
		fmt.Fprintf(os.Stderr, "KUBECP_JOB_POD_FAILURE_BACKOFF=%q: want a positive Go duration such as 1s\n", value)
		os.Exit(2)
	}
	jobcontroller.DefaultJobPodFailureBackOff = backoff
}
