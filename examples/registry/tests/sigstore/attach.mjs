// Signs an image's manifest digest and attaches the signature as an OCI referrer, the way
// GitHub's attestation actions do: an in-toto statement naming the digest, in a DSSE envelope
// signed with @sigstore/sign (here with an EC P-256 key of the test's, no transparency log),
// packed as a sigstore bundle, and pushed with @sigstore/oci (which signs in with the
// credentials given, checks the image, uploads the bundle and an empty config, then the
// referrer manifest).
//
// usage: node attach.mjs HOST/REPO sha256:DIGEST USER PASSWORD KEY.pem PREDICATE_TYPE
// prints the referrer's descriptor as JSON.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { bundleToJSON } from '@sigstore/bundle';
import { attachArtifactToImage } from '@sigstore/oci';
import { DSSEBundleBuilder } from '@sigstore/sign';

const [image, digest, username, password, keyFile, predicateType] = process.argv.slice(2);
const key = crypto.createPrivateKey(fs.readFileSync(keyFile));
const publicKey = crypto.createPublicKey(key).export({ format: 'pem', type: 'spki' }).toString();

const signer = {
  sign: async (data) => ({
    signature: crypto.sign('sha256', data, key),
    key: { $case: 'publicKey', publicKey, hint: 'test-key' },
  }),
};
const statement = {
  _type: 'https://in-toto.io/Statement/v1',
  subject: [{ name: image, digest: { sha256: digest.replace('sha256:', '') } }],
  predicateType,
  predicate: { buildDefinition: { buildType: 'https://example.com/test' } },
};
const bundle = await new DSSEBundleBuilder({ signer, witnesses: [] }).create({
  data: Buffer.from(JSON.stringify(statement)),
  type: 'application/vnd.in-toto+json',
});
const descriptor = await attachArtifactToImage({
  imageName: image,
  imageDigest: digest,
  artifact: Buffer.from(JSON.stringify(bundleToJSON(bundle))),
  mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  annotations: { 'dev.sigstore.bundle.predicateType': predicateType },
  credentials: { username, password },
});
console.log(JSON.stringify(descriptor));
