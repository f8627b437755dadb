complete -c smtp-sink -s A -d 'After 354, wait DELAY s, reply 550 This violates SMTP, disconnect' -r
complete -c smtp-sink -s b -d 'Soft-error reply text (4XX), default \'450 4.3.0 Error: command failed\'' -r
complete -c smtp-sink -s B -d 'Hard-error reply text (5XX), default \'500 5.3.0 Error: command failed\'' -r
complete -c smtp-sink -s d -d 'Dump each transaction to a new file: strftime(TEMPLATE) + 8 hex digits' -r
complete -c smtp-sink -s D -d 'Append each transaction to the file strftime(TEMPLATE)' -r
complete -c smtp-sink -s f -d 'Reply with the hard error to these commands (and drop PIPELINING)' -r
complete -c smtp-sink -s h -d 'Host name in greeting, HELO/EHLO reply and Received (default smtp-sink)' -r
complete -c smtp-sink -s H -d 'After 354, stop reading for DELAY s' -r
complete -c smtp-sink -s m -d 'Maximum simultaneous sessions (default 256)' -r
complete -c smtp-sink -s M -d 'Exit 0 after this many messages' -r
complete -c smtp-sink -s n -d 'Exit 0 after this many sessions ended with QUIT' -r
complete -c smtp-sink -s q -d 'Disconnect without reply on these commands' -r
complete -c smtp-sink -s Q -d 'Reply 421 and disconnect on these commands' -r
complete -c smtp-sink -s r -d 'Reply with the soft error to these commands (and drop PIPELINING)' -r
complete -c smtp-sink -s R -d 'chroot to this directory (only with -u)' -r
complete -c smtp-sink -s s -d 'Log these commands to syslog (mail.info)' -r
complete -c smtp-sink -s S -d 'Write this (C escapes allowed) at the start of each dump' -r
complete -c smtp-sink -s t -d 'Idle timeout and write time limit in seconds (default 100)' -r
complete -c smtp-sink -s T -d 'SO_SNDBUF/SO_RCVBUF of the TCP listener' -r
complete -c smtp-sink -s u -d 'Switch to this user after creating the listener (required as root)' -r
complete -c smtp-sink -s w -d 'Delay the reply to DATA by DELAY s (same as -W data:DELAY)' -r
complete -c smtp-sink -s W -d 'Delay the reply to CMD by DELAY s; with ODDS 1-99 a random multiple' -r
complete -c smtp-sink -l threads -d 'Run N event loops on N OS threads (default 1, one loop as Postfix; at most 256)' -r
complete -c smtp-sink -l tls-cert -d 'Offer STARTTLS with this PEM certificate chain' -r
complete -c smtp-sink -l tls-key -d 'PEM private key for --tls-cert (default: the --tls-cert file)' -r
complete -c smtp-sink -l policy -d 'Defer, bounce, rate-limit, greylist and tarpit by the rules of this TOML file' -r
complete -c smtp-sink -l seed -d 'Seed of the --policy random choices (same seed and input: same replies)' -r
complete -c smtp-sink -l json -d 'Also write the tracking report as JSON to PATH at exit (implies --track)' -r
complete -c smtp-sink -l stats -d 'Every SECONDS, print a line on stderr: sessions, messages, msg/s, MB/s' -r
complete -c smtp-sink -l metrics -d 'Serve Prometheus metrics at http://ADDR/metrics and, with --track, the live tracking report at /runs (IP:PORT, port 0: any free port, printed on stderr)' -r
complete -c smtp-sink -l help -d 'Print this help and exit'
complete -c smtp-sink -l version -d 'Print the version and exit'
complete -c smtp-sink -s 4 -d 'Listen on IPv4 only'
complete -c smtp-sink -s 6 -d 'Listen on IPv6 only'
complete -c smtp-sink -s 8 -d 'Do not announce 8BITMIME'
complete -c smtp-sink -s a -d 'Do not announce AUTH PLAIN LOGIN (AUTH stays enabled)'
complete -c smtp-sink -s c -d 'Show sess/quit/mesg counters on stdout'
complete -c smtp-sink -s C -d 'Disable and do not announce XCLIENT'
complete -c smtp-sink -s e -d 'Plain SMTP: no ESMTP in the greeting, EHLO disabled'
complete -c smtp-sink -s E -d 'Do not announce ENHANCEDSTATUSCODES'
complete -c smtp-sink -s F -d 'Disable and do not announce XFORWARD'
complete -c smtp-sink -s L -d 'Speak LMTP (LHLO, one reply per recipient after the dot)'
complete -c smtp-sink -s N -d 'Do not announce DSN'
complete -c smtp-sink -s p -d 'Do not announce PIPELINING'
complete -c smtp-sink -s P -d 'Greeting 220 ******** (implies -e)'
complete -c smtp-sink -s v -d 'Verbose output on stderr (repeatable)'
complete -c smtp-sink -l tls-self-signed -d 'Offer STARTTLS with a certificate for the -h name generated at start-up'
complete -c smtp-sink -l tls -d 'Implicit TLS: handshake at connect, no STARTTLS (needs a certificate)'
complete -c smtp-sink -l auth -d 'Real AUTH PLAIN/LOGIN exchange (235 for any credentials) instead of 250'
complete -c smtp-sink -l auth-fail -d 'Answer every AUTH exchange with 535 (implies --auth)'
complete -c smtp-sink -l auth-required -d 'Refuse MAIL before a successful AUTH with 530 (implies --auth)'
complete -c smtp-sink -l chunking -d 'Announce CHUNKING and accept BDAT (RFC 3030)'
complete -c smtp-sink -l smtputf8 -d 'Announce SMTPUTF8 (RFC 6531); dumps keep UTF-8'
complete -c smtp-sink -l track -d 'Account for messages stamped by smtp-source --track: per run, received, duplicates, gaps and delivery latency; report on stderr at exit (-M, -n, SIGINT, SIGTERM)'
