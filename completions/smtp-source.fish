complete -c smtp-source -s C -d 'Connect attempts per session before giving up (default 1)' -r
complete -c smtp-source -s f -d 'Envelope sender and From: header (default foo@HOSTNAME)' -r
complete -c smtp-source -s F -d 'Send the file\'s content as the whole message (no generated headers)' -r
complete -c smtp-source -s l -d 'Send a generated body of length bytes (plus CRLF)' -r
complete -c smtp-source -s m -d 'Total number of messages over all sessions (default 1)' -r
complete -c smtp-source -s M -d 'Hostname for HELO/LHLO, default addresses and Message-Id' -r
complete -c smtp-source -s r -d 'Recipients per transaction (implies -N) (default 1)' -r
complete -c smtp-source -s R -d 'Random pause of 0..interval seconds before each next message' -r
complete -c smtp-source -s s -d 'Number of parallel sessions (default 1)' -r
complete -c smtp-source -s S -d 'Add a Subject: header' -r
complete -c smtp-source -s t -d 'Recipient address (default foo@HOSTNAME)' -r
complete -c smtp-source -s T -d 'TCP send and receive buffer size in bytes' -r
complete -c smtp-source -s w -d 'Fixed pause of interval seconds before each next message' -r
complete -c smtp-source -l threads -d 'Run N event loops on N OS threads (default 1, one loop as Postfix; at most 256)' -r
complete -c smtp-source -l tls-ca -d 'PEM file of trusted CA certificates for --tls-verify' -r
complete -c smtp-source -l auth -d 'RFC 4954: authenticate with PLAIN or LOGIN after EHLO (and TLS) (needs --ehlo)' -r
complete -c smtp-source -l auth-user -d 'User name for --auth' -r
complete -c smtp-source -l auth-password -d 'Password for --auth' -r
complete -c smtp-source -l bdat -d 'RFC 3030: send the message in BDAT chunks of SIZE bytes (default 65536), no dot-stuffing (needs --ehlo)' -r
complete -c smtp-source -l report -d 'At the end, print a run report on stderr: counts, reply codes per stage, throughput, latency percentiles per phase; --report=timeline adds a table per --interval' -r
complete -c smtp-source -l interval -d 'Width of the report\'s timeline intervals, aligned to epoch time (default 1s; e.g. 500ms, 10s)' -r
complete -c smtp-source -l html -d 'Write the run report as one self-contained HTML file with charts (also with --merge)' -r
complete -c smtp-source -l json -d 'Write the run report as JSON to PATH (\'-\': stdout, not with -c); histograms included so that reports can be merged' -r
complete -c smtp-source -l rate -d 'Open loop: start N messages per second over all sessions, on schedule; latency counts from each message\'s intended start' -r
complete -c smtp-source -l duration -d 'Start no message after D (e.g. 60s, 1m30s); without -m the message count is then unlimited' -r
complete -c smtp-source -l progress -d 'Live status line on stderr (rate, sent, errors, p99) when stderr is a terminal; --progress=always also when it is not (one line per second)' -r
complete -c smtp-source -l shard -d 'Send shard I of N of the run: the messages j (from 0) with j mod N = I, -s split over the N shards, --rate shared on one schedule; auto/N takes I from JOB_COMPLETION_INDEX (Kubernetes Indexed Job); needs --run-id' -r
complete -c smtp-source -l run-id -d 'Run id for the --track stamps and the report, 1 to 16 hex digits, the same on every shard of a run (default: random)' -r
complete -c smtp-source -l start-at -d 'Start the load at TIME: Unix epoch seconds (1767225600.5) or +DELAY (+30s), at most 24 hours ahead; a time past starts at once' -r
complete -c smtp-source -l metrics -d 'Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, port 0: any free port, printed on stderr)' -r
complete -c smtp-source -l find-start -d 'First step\'s rate, msg/s (default 10)' -r
complete -c smtp-source -l find-factor -d 'Ramp: multiply the rate by F after each passing step (default 2)' -r
complete -c smtp-source -l find-step -d 'Length of each step (default 10s; the confirmation step is twice as long)' -r
complete -c smtp-source -l find-precision -d 'Bisect until the passing and failing rates are within P% (default 5%)' -r
complete -c smtp-source -l find-timeout -d 'Bound on the whole search (default 10m); no step starts that would end later' -r
complete -c smtp-source -l slo -d 'Objective per step, repeatable: p50|p90|p99|p99.9|max=D (latency from the intended start), errors=N%, delivery-p99=D (default p99=500ms, errors=1%)' -r
complete -c smtp-source -l sink-url -d 'http://HOST:PORT of an smtp-sink --track --metrics behind the server: each step\'s messages must also arrive there at 95% of the offered rate' -r
complete -c smtp-source -l help -d 'Print this help and exit'
complete -c smtp-source -l version -d 'Print the version and exit'
complete -c smtp-source -s 4 -d 'Connect with IPv4 only'
complete -c smtp-source -s 6 -d 'Connect with IPv6 only'
complete -c smtp-source -s A -d 'Do not abort on unexpected replies: warn and continue'
complete -c smtp-source -s c -d 'Show a running message counter on stdout'
complete -c smtp-source -s d -d 'Keep the connection open and send the next message over it'
complete -c smtp-source -s L -d 'Speak LMTP instead of SMTP'
complete -c smtp-source -s N -d 'Number the recipients (foo0@host, foo1@host, ...)'
complete -c smtp-source -s o -d 'Old mode: no HELO/LHLO and no generated headers'
complete -c smtp-source -s v -d 'Verbose: log commands and replies to stderr (repeatable)'
complete -c smtp-source -l ehlo -d 'Send EHLO instead of HELO and read the server\'s extensions (LMTP: LHLO as always)'
complete -c smtp-source -l pipelining -d 'RFC 2920: send MAIL, all RCPTs and DATA (or the BDAT chunks) in one write; with -d the next message\'s commands travel with the previous content (needs --ehlo)'
complete -c smtp-source -l starttls -d 'RFC 3207: upgrade to TLS with STARTTLS after EHLO, then EHLO again (implies --ehlo)'
complete -c smtp-source -l tls -d 'RFC 8314 implicit TLS: TLS from the first byte; no port in the endpoint means 465 (submissions)'
complete -c smtp-source -l tls-verify -d 'Verify the server certificate against --tls-ca and the host name (default: not verified)'
complete -c smtp-source -l tls-resume -d 'Resume TLS sessions across connections (default: a full handshake each time)'
complete -c smtp-source -l auth-plaintext -d 'Allow --auth without --starttls or --tls'
complete -c smtp-source -l smtputf8 -d 'RFC 6531: add SMTPUTF8 to MAIL FROM (UTF-8 in -f/-t) (needs --ehlo)'
complete -c smtp-source -l 8bitmime -d 'RFC 6152: add BODY=8BITMIME to MAIL FROM (needs --ehlo)'
complete -c smtp-source -l size -d 'RFC 1870: add SIZE=n (the message size) to MAIL FROM (needs --ehlo)'
complete -c smtp-source -l merge -d 'Send nothing: print the combined report of the JSON reports given as operands (with --json PATH, also write it as JSON)'
complete -c smtp-source -l track -d 'Stamp each message with X-Smtpstone-Run, X-Smtpstone-Seq and X-Smtpstone-Sent headers for smtp-sink --track'
complete -c smtp-source -l find-max -d 'Capacity search: open-loop steps, ramping then bisecting, for the highest rate that meets every --slo; prints \'sustainable: N msg/s\''
