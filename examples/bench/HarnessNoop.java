// The anchors' Java harness with an empty op: what `curator-bench`'s `reentrant` figure costs
// before Curator does anything (a shared ticket, two System.nanoTime() calls, a store into a
// long[]). The Rust counterpart is `bench noop`. Run with Java 11+ (single-file launch):
//
//     java -Xmx256m examples/bench/HarnessNoop.java
//
// Prints ns per iteration and M iterations/s for 6 rounds of 5 M (the first ones warm the JIT).
import java.util.concurrent.atomic.AtomicLong;

public class HarnessNoop {
  public static void main(String[] args) {
    for (int round = 0; round < 6; round++) {
      int n = 5_000_000;
      long[] lat = new long[n];
      AtomicLong tickets = new AtomicLong(n);
      long start = System.nanoTime();
      int i = 0;
      while (tickets.getAndDecrement() > 0) {
        long t0 = System.nanoTime();
        lat[i++] = System.nanoTime() - t0;
      }
      long elapsed = System.nanoTime() - start;
      System.out.printf("round %d: %.1f ns/iter, %.1f M/s%n", round, (double) elapsed / n, n * 1e3 / elapsed);
    }
  }
}
