# plot.gp - BENCHMARKS.md's figure from the series the last runs wrote: throughput over time of
# bench/e2e.sh (e2e.dat) and latency over time of bench/priority.sh (priority.dat, and
# priority-100ms.dat when there) -> plot.png.
# Run from bench/ (bench/plot.sh does: it installs gnuplot-nox when missing):
#   cd bench && gnuplot plot.gp
set terminal pngcairo size 1200,900 font ",10"
set output "plot.png"
set multiplot layout 2,1 title "herald benchmarks (".strftime("%Y-%m-%d %H:%M UTC", time(0)).")"

# per-second rates from cumulative counts: (count - previous) / (t - previous t)
# (each plot clause reads the file once, so each rate keeps its own previous values; "every 10"
# gives drate every 10th sample: an average over 10 samples)
th = NaN; hp = NaN; td = NaN; dp = NaN
hrate(t, h) = (r = (h - hp) / (t - th), hp = h, th = t, r)
drate(t, d) = (r = (d - dp) / (t - td), dp = d, td = t, r)
set title "1. end to end (e2e.sh): webhook notifications/s, heraldd at its defaults"
set xlabel "seconds since the first publish"
set ylabel "notifications/s"
set y2label "received so far"
set ytics nomirror
set y2tics
set key top left
set grid
plot "e2e.dat" using 1:(hrate($1, $2)) with lines lc rgb "#c0c0ff" title "received by nginx /s (each sample, 1 s or more apart)", \
     "" every 10 using 1:(drate($1, $2)) with lines lw 2 lc rgb "#0000c0" title "received /s (over 10 samples)", \
     "" using 1:2 axes x1y2 with lines dt 2 title "received (right axis)"

unset y2label
unset y2tics
set ytics mirror
set title "2. priority (priority.sh): send -> receipt of each high notification while the low backlog drains"
set xlabel "seconds since the first high send"
set ylabel "ms"
set logscale y
# priority-100ms.dat, when there: a run with fewer high ones (BENCH_HIGH=200 BENCH_INTERVAL=100
# BENCH_SERIES=bench/priority-100ms.dat bench/priority.sh): below the throughput, priority alone
slow = system("test -s priority-100ms.dat && echo 1 || echo 0") + 0
plot "priority.dat" using 1:2 with points pt 7 ps 0.4 title "high every 10 ms: send -> receipt", \
     (slow ? "priority-100ms.dat" : "priority.dat") using 1:(slow ? $2 : NaN) with points pt 5 ps 0.5 lc rgb "#e07000" title (slow ? "high every 100 ms" : ""), \
     50 with lines dt 2 lw 2 title "target p99 50 ms"
unset multiplot
