//go:build linux

package terminal

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// hermesd is a child subreaper (Harden); so is the test binary, or
	// orphans of the commands tested would go to init, out of reach.
	if err := setSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
