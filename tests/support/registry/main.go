// Test infrastructure only: an OCI registry with TLS and htpasswd basic auth for the tests to push to and pull from.
// It is upstream's cmd/registry (`registry serve CONFIG.yml`, github.com/distribution/distribution/v3, pinned in
// go.mod) with fewer drivers linked in, built once per machine by tests/support/build-registry.sh.
package main

import (
	"fmt"
	"os"

	"github.com/distribution/distribution/v3/registry"
	// Only what the tests configure: upstream's main also links the s3, azure and gcs drivers, the token and silly
	// access controllers and the CDN middlewares, which would multiply the download and build for nothing here.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

func main() {
	// `registry htpasswd USER PASSWORD` prints the line for auth.htpasswd.path, so the tests need no apache2-utils.
	// Cost 5 is `htpasswd -B`'s default and that of the registry's own dummy hash for unknown users: the registry
	// checks the hash on every request, and a push makes dozens of them.
	registry.RootCmd.AddCommand(&cobra.Command{
		Use:   "htpasswd USER PASSWORD",
		Short: "print one bcrypt htpasswd line for USER",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			hash, err := bcrypt.GenerateFromPassword([]byte(args[1]), 5)
			if err != nil {
				return err
			}
			fmt.Printf("%s:%s\n", args[0], hash)
			return nil
		},
	})
	// Upstream exports OpenTelemetry traces to https://localhost:4318 unless told otherwise: every 5 s an error in the
	// log, and traffic to whatever a test may run on that port. A test that wants traces sets the variable itself.
	if os.Getenv("OTEL_TRACES_EXPORTER") == "" {
		os.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	if err := registry.RootCmd.Execute(); err != nil {
		os.Exit(1)
	}
}
