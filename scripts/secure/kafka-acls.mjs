// The secured Kafka broker's ACLs, set through its loopback admin listener (a super user):
//   check  <admin broker>   exit 0 when the broker answers a metadata request
//   grant  <admin broker> [principal]  topics and groups prefixed `secure.`: read, write, describe,
//                                      create (the user's own resources, nothing else)
//   revoke <admin broker> [principal]  removes every ACL of that principal (rights revoked)
// Used by scripts/secure/start and by the tests that revoke rights mid-run.
import kafkajs from 'kafkajs';

const {
  Kafka,
  logLevel,
  AclResourceTypes,
  AclOperationTypes,
  AclPermissionTypes,
  ResourcePatternTypes,
} = kafkajs;
const [cmd, broker = '127.0.0.1:9194', principalName = 'bt'] = process.argv.slice(2);
const principal = `User:${principalName}`;
const kafka = new Kafka({
  clientId: 'backtrack-secure-admin',
  brokers: [broker],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 2000,
  requestTimeout: 10000,
  retry: { retries: 2 },
});
const admin = kafka.admin();

export function grants(p) {
  const acl = (resourceType, operation) => ({
    resourceType,
    resourceName: 'secure.',
    resourcePatternType: ResourcePatternTypes.PREFIXED,
    principal: p,
    host: '*',
    operation,
    permissionType: AclPermissionTypes.ALLOW,
  });
  const T = AclResourceTypes.TOPIC;
  const G = AclResourceTypes.GROUP;
  const O = AclOperationTypes;
  return [
    acl(T, O.READ),
    acl(T, O.WRITE),
    acl(T, O.DESCRIBE),
    acl(T, O.CREATE),
    acl(G, O.READ),
    acl(G, O.DESCRIBE),
  ];
}

try {
  await admin.connect();
  if (cmd === 'check') {
    await admin.describeCluster();
  } else if (cmd === 'grant') {
    await admin.createAcls({ acl: grants(principal) });
  } else if (cmd === 'revoke') {
    await admin.deleteAcls({
      filters: [
        {
          resourceType: AclResourceTypes.ANY,
          resourceName: 'secure.',
          resourcePatternType: ResourcePatternTypes.PREFIXED,
          principal,
          host: '*',
          operation: AclOperationTypes.ANY,
          permissionType: AclPermissionTypes.ANY,
        },
      ],
    });
  } else {
    throw new Error(`unknown command ${cmd} (check | grant | revoke)`);
  }
  await admin.disconnect();
} catch (error) {
  process.stderr.write(`kafka-acls ${cmd}: ${error?.message ?? error}\n`);
  await admin.disconnect().catch(() => {});
  process.exit(1);
}
