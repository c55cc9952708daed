// Command nnp stands in for registry.k8s.io/e2e-test-images/nonewprivs: installed setuid root
// in the test image, it prints the effective uid it runs with, so critest can tell whether
// noNewPrivileges kept the setuid bit from raising it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
