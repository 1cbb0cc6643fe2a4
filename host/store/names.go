package store

import "fmt"

// maxNameLen keeps names usable as DNS labels and Kubernetes object names.
const maxNameLen = 63

// validateName admits only names that are safe as file names and as
// Kubernetes object names: [a-z0-9][a-z0-9._-]*, at most 63 characters.
func validateName(kind EventKind, name string) error {
	if name == "" || len(name) > maxNameLen || !isLowerAlnum(name[0]) {
		return nameError(kind, name)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return nameError(kind, name)
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func nameError(kind EventKind, name string) error {
	return fmt.Errorf("%s name %q: must be 1 to %d characters of [a-z0-9._-] starting with [a-z0-9]",
		kind, name, maxNameLen)
}
