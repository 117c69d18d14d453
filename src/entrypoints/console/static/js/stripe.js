// Stripe.js for the console, when the server runs the Stripe provider: the page then carries the
// publishable key (body[data-stripe-key]) and loads Stripe.js from the configured URL before this
// module runs. Without it (the offline provider) every page keeps its offline simulation.

let client = null;

/** The Stripe.js client, or null when payments are offline. */
export function stripeClient() {
  const key = document.body.dataset.stripeKey;
  if (!key) return null;
  if (typeof window.Stripe !== "function") {
    throw new Error("The payment form could not be loaded. Check your connection and reload the page.");
  }
  client = client || window.Stripe(key);
  return client;
}

/** Mount Stripe's embedded Checkout for a session's client secret into `target`; returns the
 * checkout (call `destroy()` before mounting another). Completing it returns to the session's
 * return URL with `session_id=cs_…`. */
export async function mountEmbeddedCheckout(stripe, clientSecret, target) {
  const checkout = await stripe.initEmbeddedCheckout({ fetchClientSecret: async () => clientSecret });
  await checkout.mount(target);
  return checkout;
}
