#!/usr/bin/env python3
"""Sets, in the AWS emulator, what people set by hand in a real account and mooring only
checks: the hand-set secrets the example manifests declare as `required`, the API key
secret of the schedules, ACM certificates for the example domains, and the security group of
the webapp's database (another team's).

    .venv/bin/python scripts/seed-emulator.py [ENDPOINT]

ENDPOINT defaults to $AWS_ENDPOINT_URL. Idempotent: what exists is left alone. Values are
random and never printed. Runs with the virtualenv's boto3 and cryptography (moto's own
dependencies). Never point it at a real account: it refuses anything but loopback.
"""
import datetime
import os
import secrets
import sys
from urllib.parse import urlparse

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOMAINS = ["api.salon.example", "api.small.example", "app.webapp.example", "api.dev.salon.example"]
# The salon-booking example in production (manifests/examples/salon-booking and its `prd`
# environment) and in development (its `dev` environment, under /salon/dev).
SECURE_PARAMETERS = [
    f"/salon/{env}/secrets/{name}"
    for env in ("prd", "dev")
    for name in (
        "database-password",
        "jwt-access-secret",
        "jwt-refresh-secret",
        "admin-default-password",
        "sms-provider-token",
        "smtp-password",
    )
]
API_KEY_SECRETS = ["salon/prd/scheduler-api-key", "salon/dev/scheduler-api-key"]
EXTERNAL_GROUPS = ["webapp-db"]


def self_signed(domain):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def main():
    endpoint = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AWS_ENDPOINT_URL")
    host = urlparse(endpoint or "").hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"seed-emulator: refusing to seed {endpoint!r}: only a loopback emulator")
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    client = lambda name: session.client(name, endpoint_url=endpoint)  # noqa: E731

    acm = client("acm")
    issued = {
        c["DomainName"]
        for c in acm.list_certificates(CertificateStatuses=["ISSUED"])["CertificateSummaryList"]
    }
    for domain in DOMAINS:
        if domain in issued:
            continue
        cert, key = self_signed(domain)
        acm.import_certificate(Certificate=cert, PrivateKey=key)
        print(f"seeded ACM certificate for {domain}")

    # The webapp's database belongs to another team: its security group exists before
    # mooring adds the backend's rule to it (manifests/examples/webapp/database-access.yaml).
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    for group in EXTERNAL_GROUPS:
        found = ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [group]},
                {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            ]
        )["SecurityGroups"]
        if not found:
            ec2.create_security_group(
                GroupName=group, Description="database (another team's)", VpcId=vpc["VpcId"]
            )
            print(f"seeded security group {group}")

    ssm = client("ssm")
    for name in SECURE_PARAMETERS:
        try:
            ssm.put_parameter(
                Name=name, Value=secrets.token_urlsafe(24), Type="SecureString", Overwrite=False
            )
            print(f"seeded SecureString {name}")
        except ssm.exceptions.ParameterAlreadyExists:
            pass

    sm = client("secretsmanager")
    for name in API_KEY_SECRETS:
        try:
            sm.create_secret(Name=name, SecretString=secrets.token_urlsafe(32))
            print(f"seeded secret {name}")
        except sm.exceptions.ResourceExistsException:
            pass


if __name__ == "__main__":
    main()
