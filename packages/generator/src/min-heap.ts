/**
 * A 4-ary min-heap of items by a numeric key. The keys live in an array of their own, so that
 * sifting compares neighbouring numbers instead of chasing pointers to scattered objects, and
 * four children per node halve the depth (the heap holds every customer alive at once: tens of
 * thousands). Items with equal keys come out in an order that depends only on the sequence of
 * operations.
 */
export class MinHeap<T> {
  private keys: Float64Array = new Float64Array(64);
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The item with the smallest key, undefined when empty. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** The smallest key, +∞ when empty. */
  peekKey(): number {
    return this.items.length > 0 ? this.keys[0]! : Number.POSITIVE_INFINITY;
  }

  push(key: number, item: T): void {
    const items = this.items;
    let i = items.length;
    if (i === this.keys.length) {
      const grown = new Float64Array(i * 2);
      grown.set(this.keys);
      this.keys = grown;
    }
    const keys = this.keys;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 2;
      if (keys[parent]! <= key) break;
      keys[i] = keys[parent]!;
      items[i] = items[parent]!;
      i = parent;
    }
    keys[i] = key;
    items[i] = item;
  }

  /** Removes and returns the item with the smallest key. */
  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0) this.siftDown(this.keys[items.length]!, last!);
    return top;
  }

  /** Gives the top item a new key (cheaper than pop and push). */
  replaceTopKey(key: number): void {
    const top = this.items[0];
    if (top !== undefined) this.siftDown(key, top);
  }

  /** Places (key, item) at the root and moves it down to where it belongs. */
  private siftDown(key: number, item: T): void {
    const keys = this.keys;
    const items = this.items;
    const length = items.length;
    let i = 0;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= length) break;
      let child = first;
      let childKey = keys[first]!;
      const last = Math.min(first + 4, length);
      for (let c = first + 1; c < last; c += 1) {
        const k = keys[c]!;
        if (k < childKey) {
          child = c;
          childKey = k;
        }
      }
      if (childKey >= key) break;
      keys[i] = childKey;
      items[i] = items[child]!;
      i = child;
    }
    keys[i] = key;
    items[i] = item;
  }
}
