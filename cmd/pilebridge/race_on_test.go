//go:build race

package main

// raceBuild makes the e2e tests build the daemon with the race detector too.
const raceBuild = true
