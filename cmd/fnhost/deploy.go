package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/runtime/build"
)

const deployUsage = `Usage: fnhost deploy [flags] <name>...

Deploys functions into Apache Pulsar Functions through the admin REST API, as scripts/deploy
does with pulsar-admin but without Java: builds the function named by
<manifests>/<name>.yaml as a static binary, uploads it to the package store as
function://TENANT/NAMESPACE/NAME@SHA, creates or updates the function to run it, and waits until
its instances run. With --delete, deletes the functions instead.

Flags:
`

// deploy builds and deploys functions through the Pulsar admin REST API.
func deploy(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	c, err := serveConfigFromEnv(env)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost:", err)
		return errReported
	}
	adminURL := "http://127.0.0.1:8080"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "FNHOST_ADMIN_URL="); ok {
			adminURL = v
		}
	}
	fs := flag.NewFlagSet("fnhost deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&adminURL, "admin-url", adminURL, "Pulsar admin (web service) URL (FNHOST_ADMIN_URL)")
	fs.StringVar(&c.Manifests, "manifests", c.Manifests, "directory of function manifests (FNHOST_MANIFESTS)")
	fs.StringVar(&c.BuildDir, "build-dir", c.BuildDir, "where binaries are built (FNHOST_BUILD_DIR; default: a temporary directory)")
	del := fs.Bool("delete", false, "delete the functions instead of deploying them")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the instances to run")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), deployUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	admin, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: adminURL, PulsarAPIVersion: config.V3})
	if err != nil {
		return fmt.Errorf("admin client for %s: %w", adminURL, err)
	}
	if c.BuildDir == "" {
		dir, err := os.MkdirTemp("", "fnhost-deploy-")
		if err != nil {
			return err
		}
		defer func() {
			// The deploy's outcome stands; a leftover temporary directory is only worth a warning.
			if err := os.RemoveAll(dir); err != nil {
				fmt.Fprintln(stderr, "fnhost deploy: removing the build directory:", err)
			}
		}()
		c.BuildDir = dir
	}
	d := deployer{admin: admin, buildDir: c.BuildDir, wait: *wait, out: stdout}
	for _, name := range fs.Args() {
		m, err := manifest.Load(filepath.Join(c.Manifests, name+".yaml"))
		if err != nil {
			return err
		}
		if *del {
			err = d.delete(ctx, m)
		} else {
			err = d.deploy(ctx, m)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", m.FQFN(), err)
		}
	}
	return nil
}

type deployer struct {
	admin    pulsaradmin.Client
	buildDir string
	wait     time.Duration
	out      io.Writer
}

func (d deployer) deploy(ctx context.Context, m *manifest.Function) error {
	if m.Source == "" && m.Binary == "" {
		return errors.New("the manifest names no source or binary")
	}
	bin := m.Binary
	if m.Source != "" {
		bin = filepath.Join(d.buildDir, m.Name)
		fmt.Fprintf(d.out, "building %s from %s\n", m.FQFN(), m.Source)
		if err := build.Binary(ctx, m.Source, bin); err != nil {
			return err
		}
	}
	sum, err := fileSHA(bin)
	if err != nil {
		return err
	}
	pkg := fmt.Sprintf("function://%s/%s/%s@%s", m.Tenant, m.Namespace, m.Name, sum[:16])
	if _, err := d.admin.Packages().GetMetadataWithContext(ctx, pkg); err == nil {
		fmt.Fprintf(d.out, "package %s already uploaded\n", pkg)
	} else {
		fmt.Fprintf(d.out, "uploading %s\n", pkg)
		if err := d.admin.Packages().UploadWithContext(ctx, pkg, bin, "fnhost "+m.Name, "", nil); err != nil {
			return fmt.Errorf("uploading %s: %w", pkg, err)
		}
	}
	cfg := m.Config
	cfg.Tenant, cfg.Namespace, cfg.Name = m.Tenant, m.Namespace, m.Name
	cfg.Runtime = "GO"
	cfg.Go = &pkg
	// pulsaradmin's FunctionConfig has plain booleans, so a manifest that leaves these out
	// would send false where pulsar-admin sends the worker's defaults.
	cfg.AutoAck = m.Guarantee != manifest.Manual || !m.ConfigHas("autoAck") || m.Config.AutoAck
	cfg.ForwardSourceMessageProperty = m.ForwardProperties
	if !m.ConfigHas("cleanupSubscription") {
		cfg.CleanupSubscription = true
	}
	if _, err := d.admin.Functions().GetFunctionWithContext(ctx, m.Tenant, m.Namespace, m.Name); err == nil {
		fmt.Fprintf(d.out, "updating %s\n", m.FQFN())
		err = d.admin.Functions().UpdateFunctionWithURLWithContext(ctx, &cfg, pkg, nil)
		if err != nil {
			return fmt.Errorf("updating: %w", err)
		}
	} else if isStatus(err, http.StatusNotFound) {
		fmt.Fprintf(d.out, "creating %s\n", m.FQFN())
		if err := d.admin.Functions().CreateFuncWithURLWithContext(ctx, &cfg, pkg); err != nil {
			return fmt.Errorf("creating: %w", err)
		}
	} else {
		return fmt.Errorf("looking the function up: %w", err)
	}
	if err := d.waitRunning(ctx, m); err != nil {
		return err
	}
	// The function runs the new package: the ones it ran before would only fill the store.
	d.prunePackages(ctx, m, sum[:16])
	return nil
}

// prunePackages deletes the versions of m's package in the package store other than keep (all
// of them when keep is empty): every deploy of a changed binary uploads a version, and the
// worker deletes none, not even when the function is deleted. A failure is reported, not
// returned: the function itself is deployed or deleted by then.
func (d deployer) prunePackages(ctx context.Context, m *manifest.Function, keep string) {
	name := fmt.Sprintf("function://%s/%s/%s", m.Tenant, m.Namespace, m.Name)
	versions, err := d.admin.Packages().ListVersionsWithContext(ctx, name)
	if err != nil {
		if !isStatus(err, http.StatusNotFound) {
			fmt.Fprintf(d.out, "warning: listing the versions of %s: %v\n", name, err)
		}
		return
	}
	n := 0
	for _, v := range versions {
		if v == keep {
			continue
		}
		// The file store leaves a deleted version's empty directory behind, and lists it
		// still; its metadata is gone.
		if _, err := d.admin.Packages().GetMetadataWithContext(ctx, name+"@"+v); isStatus(err, http.StatusNotFound) {
			continue
		}
		if err := d.admin.Packages().DeleteWithContext(ctx, name+"@"+v); err != nil && !isStatus(err, http.StatusNotFound) {
			fmt.Fprintf(d.out, "warning: deleting %s@%s: %v\n", name, v, err)
			continue
		}
		n++
	}
	if n > 0 {
		fmt.Fprintf(d.out, "deleted %d unused version(s) of %s from the package store\n", n, name)
	}
}

func (d deployer) waitRunning(ctx context.Context, m *manifest.Function) error {
	ctx, cancel := context.WithTimeout(ctx, d.wait)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	running := 0
	for {
		st, err := d.admin.Functions().GetFunctionStatusWithContext(ctx, m.Tenant, m.Namespace, m.Name)
		if err == nil {
			running = st.NumRunning
			if running >= m.Parallelism {
				fmt.Fprintf(d.out, "%s: %d/%d instances running\n", m.FQFN(), running, m.Parallelism)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d/%d instances running after %s; the instance output is in the worker's log (scripts/pulsar logs)", running, m.Parallelism, d.wait)
		case <-t.C:
		}
	}
}

func (d deployer) delete(ctx context.Context, m *manifest.Function) error {
	if err := d.admin.Functions().DeleteFunctionWithContext(ctx, m.Tenant, m.Namespace, m.Name); err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	fmt.Fprintf(d.out, "deleted %s\n", m.FQFN())
	d.prunePackages(ctx, m, "")
	return nil
}

func isStatus(err error, code int) bool {
	var e rest.Error
	return errors.As(err, &e) && e.Code == code
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }() // opened for reading: closing it cannot lose data
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
