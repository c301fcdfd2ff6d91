// Values that are there now or later. Handlers answer synchronously where they can (most
// metadata requests), so chaining must not allocate a Promise when nothing is pending.

export type MaybeAsync<T> = T | Promise<T>;

/**
 * f(v), after v settles if it is a Promise. (Not named `then`: a module exporting `then`
 * is a thenable, and whatever awaits its namespace, as test runners do, calls it.)
 */
export function after<T, U>(v: MaybeAsync<T>, f: (t: T) => MaybeAsync<U>): MaybeAsync<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** f(), or onError(e) when f throws or its Promise rejects. */
export function recover<T>(f: () => MaybeAsync<T>, onError: (e: unknown) => MaybeAsync<T>): MaybeAsync<T> {
  let v: MaybeAsync<T>;
  try {
    v = f();
  } catch (e) {
    return onError(e);
  }
  return v instanceof Promise ? v.catch(onError) : v;
}
