'use strict';
// InfraPilot SDK for Node.js: loads the addon built by ./build.sh (no napi CLI, no npm
// packages) and turns its errors into InfraPilotError subclasses.
//
// The addon throws plain Errors whose message is the SDK error as JSON ({kind, message,
// ...fields}); every exported function, constructor and method is wrapped here so callers
// only ever see the typed classes below.

const path = require('path');

let addon;
try {
  addon = require(path.join(__dirname, 'infrapilot.node'));
} catch (err) {
  throw new Error(
    `could not load ${path.join(__dirname, 'infrapilot.node')}: ${err.message}; ` +
      'build it with bindings/node/build.sh',
  );
}

/** Base class of every InfraPilot error; `kind` and `details` say what went wrong. */
class InfraPilotError extends Error {
  constructor(details) {
    super(details.display || details.message);
    this.name = new.target.name;
    this.details = details;
    for (const [key, value] of Object.entries(details)) {
      if (key !== 'message' && key !== 'display') this[key] = value;
    }
  }
}
/** An argument was refused; `field` names the part. */
class InvalidInputError extends InfraPilotError {}
/** A string argument that must be JSON is not. */
class InvalidJsonError extends InvalidInputError {}
/** A policy set is invalid; `diagnostics` locate each problem by JSON pointer. */
class PolicyError extends InfraPilotError {}
/** A compose file could not be read; `field`, `line` and `column` locate the problem. */
class ComposeError extends InfraPilotError {}
/** An enrollment token was refused (the message never repeats its secret). */
class EnrollmentTokenError extends InfraPilotError {}
/** A public key is not 64 hex digits encoding an Ed25519 key. */
class InvalidKeyError extends InfraPilotError {}
/** The API answered with a problem document: `status`, `detail`, `errors`, `problem_type`. */
class ApiError extends InfraPilotError {}
/** The API could not be reached. */
class TransportError extends InfraPilotError {}
/** The API answered something the SDK does not understand. */
class UnexpectedResponseError extends InfraPilotError {}

const CLASSES = {
  invalid_input: InvalidInputError,
  invalid_json: InvalidJsonError,
  invalid_policy: PolicyError,
  invalid_compose: ComposeError,
  invalid_enrollment_token: EnrollmentTokenError,
  invalid_key: InvalidKeyError,
  api: ApiError,
  transport: TransportError,
  unexpected_response: UnexpectedResponseError,
};

/** Rethrows an addon error as its typed class; other errors (TypeError, …) pass through. */
function typed(err) {
  if (!(err instanceof Error) || typeof err.message !== 'string' || err.message[0] !== '{') {
    return err;
  }
  let details;
  try {
    details = JSON.parse(err.message);
  } catch {
    return err;
  }
  if (!details || typeof details.kind !== 'string') return err;
  const Class = CLASSES[details.kind] || InfraPilotError;
  return new Class(details);
}

function wrap(fn) {
  return function wrapped(...args) {
    let result;
    try {
      result = fn.apply(this, args);
    } catch (err) {
      throw typed(err);
    }
    if (result && typeof result.then === 'function') {
      return result.then(undefined, (err) => {
        throw typed(err);
      });
    }
    return result;
  };
}

function wrapClass(Native) {
  const Wrapped = class extends Native {
    constructor(...args) {
      try {
        super(...args);
      } catch (err) {
        throw typed(err);
      }
    }
  };
  Object.defineProperty(Wrapped, 'name', { value: Native.name });
  for (const name of Object.getOwnPropertyNames(Native.prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(Native.prototype, name);
    if (name === 'constructor' || typeof descriptor.value !== 'function') continue;
    Object.defineProperty(Wrapped.prototype, name, { ...descriptor, value: wrap(descriptor.value) });
  }
  return Wrapped;
}

const PolicyEngine = wrapClass(addon.PolicyEngine);
const evaluateJson = PolicyEngine.prototype.evaluateJson;
// Objects cross N-API as one JSON string each way: about twice as fast as the addon's
// value-by-value conversion (see bindings/bench).
PolicyEngine.prototype.evaluate = function evaluate(resource, action, context) {
  const text = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
  return JSON.parse(
    evaluateJson.call(this, text(resource), action ?? null, context == null ? null : text(context)),
  );
};

module.exports = {
  PolicyEngine,
  Client: wrapClass(addon.Client),
  validatePolicy: wrap(addon.validatePolicy),
  listTemplates: wrap(addon.listTemplates),
  evaluateCompose: wrap(addon.evaluateCompose),
  composeResources: wrap(addon.composeResources),
  validateProxyHost: wrap(addon.validateProxyHost),
  renderProxyHost: wrap(addon.renderProxyHost),
  defaultLayout: wrap(addon.defaultLayout),
  verifyAuditExport: wrap(addon.verifyAuditExport),
  inspectEnrollmentToken: wrap(addon.inspectEnrollmentToken),
  InfraPilotError,
  InvalidInputError,
  InvalidJsonError,
  PolicyError,
  ComposeError,
  EnrollmentTokenError,
  InvalidKeyError,
  ApiError,
  TransportError,
  UnexpectedResponseError,
};
