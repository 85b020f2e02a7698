import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { SERVER_NAME, SERVER_VERSION } from '../../broker/index.js';

// The version has one home, package.json; the broker reads it at load (broker/version.ts) and specs compare against it.
describe('SERVER_VERSION', () => {
  it('is the version in package.json, read from the compiled module', () => {
    // Read here independently (from the working directory, the repository root under mocha), not through version.ts.
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string; version: string };
    expect(SERVER_VERSION).to.equal(pkg.version);
    expect(SERVER_NAME).to.equal(pkg.name);
  });
});
