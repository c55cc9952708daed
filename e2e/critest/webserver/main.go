// Command webserver stands in for the nginx and httpd test images of critest: it serves 200 on
// every path of -port, writes its pid to -pidfile, and shows the process title critest looks
// for. Installed as /usr/sbin/nginx its command name (comm) is nginx, so `pidof nginx` finds it,
// and its /proc/PID/cmdline starts with "nginx: master process" as real nginx rewrites its own.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	name := flag.String("name", "nginx", "process title prefix and log prefix")
	port := flag.Int("port", 80, "TCP port to serve")
	pidFile := flag.String("pidfile", "", "file to write the pid to")
	flag.Parse()

	// Re-exec under the nginx-style title; the pid and the executable (so comm) stay.
	title := *name + ": master process"
	if !strings.HasPrefix(os.Args[0], title) {
		exe, err := os.Executable()
		if err == nil {
			argv := append([]string{title + " " + strings.Join(os.Args, " ")}, os.Args[1:]...)
			err = syscall.Exec(exe, argv, os.Environ())
		}
		fmt.Fprintf(os.Stderr, "%s: re-exec: %v\n", *name, err)
		os.Exit(1)
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *name, err)
			os.Exit(1)
		}
	}
	// As PID 1 of a container, a signal without a handler is ignored: stop on SIGTERM.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		os.Exit(0)
	}()
	fmt.Printf("%s: serving on :%d\n", *name, *port)
	srv := &http.Server{
		Addr:              fmt.Sprintf(":%d", *port),
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "<html><body><h1>Welcome to %s!</h1></body></html>\n", *name)
		}),
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", *name, srv.ListenAndServe())
	os.Exit(1)
}
