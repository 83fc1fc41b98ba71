// Package repocheck holds the test of the repository's own hygiene check,
// .ci/tracked-binaries (run by `make lint`): no build output is tracked.
package repocheck
