// Package main builds the upstream kube-controller-manager command from k8s.io/kubernetes
// (the StatefulSet controller, the garbage collector and the others the tests' control plane runs).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
