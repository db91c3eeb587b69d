// With no addon that fits (the test removes the prebuild first): the first use must throw
// bpfkit's BpfkitError saying what to install and how to build; print it as JSON.
import { BpfObject, BpfkitError } from 'bpfkit';

try {
  await BpfObject.openBuiltin('counter').load();
  console.log(JSON.stringify({ loaded: true }));
} catch (e) {
  console.log(JSON.stringify({ bpfkitError: e instanceof BpfkitError, code: e.code, message: e.message, details: e.details }));
}
