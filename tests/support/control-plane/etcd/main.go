// etcd's server at the version k8s.io/kubernetes pins (see go.sum), built here because a plain `go install` of
// go.etcd.io/etcd/server/v3 fails on its relative replaces.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
