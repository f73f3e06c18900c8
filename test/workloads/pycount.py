# A real interpreter mid-computation: sums the primes below 300000 in slices of 2000,
# writes `ready` after ten slices, idles between slices until `go` (it may be checkpointed
# then), finishes, prints the sum and checks it against the known value.
import os
import sys
import time

os.chdir(sys.argv[1])
LIMIT, EXPECTED, SLICE = 300000, 3709507114, 2000


def write(name, text):
    with open(name + '.tmp', 'w') as f:
        f.write(text)
    os.rename(name + '.tmp', name)


def is_prime(k):
    return k > 1 and all(k % d for d in range(2, int(k ** 0.5) + 1))


total, n, slices = 0, 0, 0
while n < LIMIT:
    if slices == 10 and not os.path.exists('ready'):
        write('ready', 'ready\n')
    if slices >= 10 and not os.path.exists('go'):
        time.sleep(0.001)
        continue
    total += sum(k for k in range(n, min(n + SLICE, LIMIT)) if is_prime(k))
    n += SLICE
    slices += 1
print(total, flush=True)
write('result', 'PASS\n' if total == EXPECTED else 'FAIL: total %d, want %d\n' % (total, EXPECTED))
