package boardtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vm is the emulated board: qemu-system-arm -M virt with Debian's armmp
// kernel, its root on a copy-on-write overlay of the cached image, an
// emulated FTDI adapter whose far end is the simulator's line, and qemu's
// user network restricted to two forwards.
type vm struct {
	t       *testing.T
	image   string // image.sh's directory: vmlinuz, initrd.img, root.qcow2, id_ed25519
	dir     string
	disk    string
	sshPort int
	webPort int
	line    string // host:port of the simulator's RTU-over-TCP end
	plat    string // host:port of the platform stand-in (TLS)
	sshCfg  string
	boots   int
	cmd     *exec.Cmd
	exited  chan error
}

// guestPlatform is where the board finds the platform: qemu answers
// connections to it by running socat to the stand-in on the host's loopback.
const guestPlatform = "10.0.2.100"

func newVM(t *testing.T, image, dir, line, plat string) *vm {
	v := &vm{t: t, image: image, dir: dir, line: line, plat: plat,
		disk: filepath.Join(dir, "board.qcow2"), sshPort: freePort(t), webPort: freePort(t)}
	// the board's disk: the cached image is never written
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
		"-b", filepath.Join(image, "root.qcow2"), v.disk)
	v.sshCfg = filepath.Join(dir, "ssh_config")
	cfg := fmt.Sprintf(`Host board
  HostName 127.0.0.1
  Port %d
  User root
  IdentityFile %s
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 10
  ServerAliveInterval 5
  ServerAliveCountMax 6
`, v.sshPort, filepath.Join(image, "id_ed25519"))
	must(t, os.WriteFile(v.sshCfg, []byte(cfg), 0o600))
	// `ssh board …` and `scp … board:` as the README writes them
	bin := filepath.Join(dir, "bin")
	must(t, os.MkdirAll(bin, 0o755))
	for _, tool := range []string{"ssh", "scp"} {
		real, err := exec.LookPath(tool)
		must(t, err)
		script := fmt.Sprintf("#!/bin/sh\nexec %s -F %s \"$@\"\n", real, v.sshCfg)
		must(t, os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755))
	}
	t.Cleanup(v.cut)
	return v
}

func (v *vm) binDir() string { return filepath.Join(v.dir, "bin") }

// boot starts qemu and waits until ssh answers.
func (v *vm) boot() {
	t := v.t
	t.Helper()
	v.boots++
	console := filepath.Join(v.dir, fmt.Sprintf("console-%d.log", v.boots))
	netdev := fmt.Sprintf("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=tcp:127.0.0.1:%d-:9105,guestfwd=tcp:%s:443-cmd:socat - TCP:%s",
		v.sshPort, v.webPort, guestPlatform, v.plat)
	host, port, err := net.SplitHostPort(v.line)
	must(t, err)
	args := []string{
		// highmem=off: the armmp kernel (no LPAE) cannot reach the PCIe
		// ECAM that virt puts above 4 GiB, and the xHCI is on PCIe
		"-M", "virt,highmem=off", "-cpu", "cortex-a15", "-smp", "2", "-m", "512",
		"-kernel", filepath.Join(v.image, "vmlinuz"), "-initrd", filepath.Join(v.image, "initrd.img"),
		"-append", "root=/dev/vda rw console=ttyAMA0 panic=10",
		// writeback: a guest's flush reaches the host file; what the guest
		// did not flush is lost when qemu is killed
		"-drive", "if=none,id=hd0,format=qcow2,cache=writeback,file=" + v.disk,
		"-device", "virtio-blk-device,drive=hd0",
		"-netdev", netdev, "-device", "virtio-net-device,netdev=net0",
		"-chardev", fmt.Sprintf("socket,id=line0,host=%s,port=%s,reconnect=1", host, port),
		"-device", "qemu-xhci,id=xhci", "-device", "usb-serial,bus=xhci.0,chardev=line0",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + console,
	}
	cmd := exec.Command("qemu-system-arm", args...)
	out, err := os.Create(filepath.Join(v.dir, fmt.Sprintf("qemu-%d.log", v.boots)))
	must(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	v.cmd = cmd
	v.exited = make(chan error, 1)
	go func() { v.exited <- cmd.Wait(); out.Close() }()
	start := time.Now()
	deadline := start.Add(8 * time.Minute)
	for {
		if _, err := v.ssh("true", nil); err == nil {
			break
		}
		select {
		case err := <-v.exited:
			b, _ := os.ReadFile(console)
			t.Fatalf("qemu exited during boot %d: %v\nconsole tail:\n%s", v.boots, err, tail(b, 3000))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(console)
			t.Fatalf("boot %d: no ssh after %s\nconsole tail:\n%s", v.boots, time.Since(start).Round(time.Second), tail(b, 3000))
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("boot %d: ssh answers %s after qemu started", v.boots, time.Since(start).Round(time.Second))
}

// cut is a power cut: qemu dies with the guest's page cache.
func (v *vm) cut() {
	if v.cmd == nil {
		return
	}
	_ = v.cmd.Process.Kill()
	<-v.exited
	v.cmd = nil
}

// ssh runs a shell command line on the board.
func (v *vm) ssh(cmdline string, stdin io.Reader) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", v.sshCfg, "board", cmdline)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ssh board %q: %w: %s", cmdline, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// on runs cmdline on the board; the test fails if it does.
func (v *vm) on(cmdline string) string {
	v.t.Helper()
	out, err := v.ssh(cmdline, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// host runs a line of the README on the host, with ssh and scp reaching the board.
func (v *vm) host(dir, line string, stdin io.Reader) string {
	v.t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+v.binDir()+":"+os.Getenv("PATH"))
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		v.t.Fatalf("README step %q: %v\n%s", line, err, out)
	}
	return strings.TrimSpace(string(out))
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
