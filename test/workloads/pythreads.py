# A real multithreaded interpreter: three threads each sum squares over their own range in
# slices, contending for the GIL (futex) and sleeping between slices; they idle after ten
# slices until `go` (a checkpoint may come then), finish, and the total is checked.
import os
import sys
import threading
import time

os.chdir(sys.argv[1])
RANGES = [(0, 60000), (60000, 120000), (120000, 180000)]
EXPECTED = sum(k * k % 1000003 for k in range(180000))
results = [0, 0, 0]
paused = threading.Semaphore(0)


def write(name, text):
    with open(name + '.tmp', 'w') as f:
        f.write(text)
    os.rename(name + '.tmp', name)


def work(i):
    lo, hi = RANGES[i]
    total, n, slices = 0, lo, 0
    while n < hi:
        total += sum(k * k % 1000003 for k in range(n, min(n + 1000, hi)))
        n += 1000
        slices += 1
        if slices == 10:
            paused.release()
            while not os.path.exists('go'):
                time.sleep(0.001)
        time.sleep(0.0005)
    results[i] = total


threads = [threading.Thread(target=work, args=(i,), name='sum-%d' % i) for i in range(3)]
for t in threads:
    t.start()
for _ in threads:
    paused.acquire()
write('ready', 'ready\n')
for t in threads:
    t.join()
print(sum(results), flush=True)
write('result', 'PASS\n' if sum(results) == EXPECTED else 'FAIL: total %d, want %d\n' % (sum(results), EXPECTED))
