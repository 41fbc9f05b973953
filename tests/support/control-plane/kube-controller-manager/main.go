// The upstream kube-controller-manager entry point (k8s.io/kubernetes/cmd/kube-controller-manager): garbage
// collection by ownerReferences, namespace deletion, Deployments -> ReplicaSets -> Pods, ServiceAccounts.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
