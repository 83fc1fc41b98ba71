package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"pilebridge/simulator"
)

// cmdCamera pushes a plate the way a bay's LPR camera does.
func cmdCamera(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("camera", flag.ContinueOnError)
	url := fs.String("push", "", "where the camera pushes: http://BOARD:PORT/plates/camera[/SECRET], /plates/hikvision[/SECRET], or /NotificationInfo/TollgateInfo for dahua (required)")
	var cam simulator.Camera
	fs.StringVar(&cam.Maker, "maker", "alarminfoplate", fmt.Sprintf("the push format, one of %v", simulator.Makers))
	fs.StringVar(&cam.Serial, "serial", "sim-camera-1", "the camera's serialno (hikvision: its MAC address; dahua: its DeviceID)")
	fs.StringVar(&cam.IPAddr, "ipaddr", "192.168.1.64", "the address it reports")
	fs.IntVar(&cam.Channel, "channel", 0, "the bay channel it reports")
	fs.BoolVar(&cam.Base64, "base64", false, "send the licence base64-encoded (alarminfoplate)")
	fs.BoolVar(&cam.GBK, "gbk", false, "send the body GBK-encoded")
	plate := fs.String("plate", "", "the plate it reads (required)")
	conf := fs.Int("confidence", 95, "the read's confidence, 0..100")
	every := fs.Duration("every", 0, "push again at this interval until stopped (0: once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *plate == "" {
		return errors.New("camera: --push and --plate are required")
	}
	for {
		status, answer, err := cam.Push(ctx, *url, *plate, *conf, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "camera %s pushed %s: %d %s\n", cam.Serial, *plate, status, answer)
		if status != 200 {
			return fmt.Errorf("camera: the bridge answered %d", status)
		}
		if *every <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*every):
		}
	}
}
