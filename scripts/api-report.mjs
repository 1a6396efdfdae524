#!/usr/bin/env node
/**
 * The public API report: one file per package entry (each `exports` key of packages/*\/package.json
 * with a `types` condition) under api/, listing every exported name with its kind and signature,
 * read with the TypeScript compiler API from the entry's source. A change to the public surface is
 * then a visible diff in review.
 *
 *   node scripts/api-report.mjs          writes api/*.api.md (npm run api:update)
 *   node scripts/api-report.mjs --check  fails when a report is stale (npm run api:check)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const outDir = join(root, 'api');
const check = process.argv.includes('--check');

/** Every `types` export of every package, mapped from dist/*.d.ts back to its src/*.ts. */
function entries() {
  const found = [];
  for (const dir of readdirSync(join(root, 'packages')).sort()) {
    const manifest = join(root, 'packages', dir, 'package.json');
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
    for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
      if (typeof target !== 'object' || !target.types) continue;
      const source = join(
        root,
        'packages',
        dir,
        target.types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, '.ts'),
      );
      if (!existsSync(source)) throw new Error(`${pkg.name} ${subpath}: no source ${source}`);
      const name = subpath === '.' ? pkg.name : `${pkg.name}/${subpath.replace(/^\.\//, '')}`;
      const file = `${name.replace(/^@/, '').replace(/\//g, '-')}.api.md`;
      found.push({ name, source, file });
    }
  }
  return found;
}

const FLAGS =
  ts.TypeFormatFlags.NoTruncation |
  ts.TypeFormatFlags.UseSingleQuotesForStringLiteralType |
  ts.TypeFormatFlags.WriteClassExpressionAsTypeLiteral;

function kindOf(symbol) {
  const f = symbol.flags;
  if (f & ts.SymbolFlags.Class) return 'class';
  if (f & ts.SymbolFlags.Function) return 'function';
  if (f & ts.SymbolFlags.Enum) return 'enum';
  if (f & ts.SymbolFlags.Interface)
    return f & ts.SymbolFlags.Variable ? 'const+interface' : 'interface';
  if (f & ts.SymbolFlags.TypeAlias) return f & ts.SymbolFlags.Variable ? 'const+type' : 'type';
  if (f & ts.SymbolFlags.Variable) return 'const';
  if (f & ts.SymbolFlags.Namespace) return 'namespace';
  return 'other';
}

function isPublicMember(decl) {
  const mods = ts.canHaveModifiers(decl) ? (ts.getModifiers(decl) ?? []) : [];
  if (
    mods.some(
      (m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword,
    )
  ) {
    return false;
  }
  return !(decl.name && ts.isPrivateIdentifier(decl.name));
}

/** One line per public member of a class, interface or object type. */
function members(checker, type, at) {
  const lines = [];
  for (const prop of checker.getPropertiesOfType(type)) {
    const decl = prop.valueDeclaration ?? prop.declarations?.[0];
    if (decl && !isPublicMember(decl)) continue;
    // Members inherited from the platform (Error's stack, Function's apply) are not our surface.
    if (decl && /[\\/]node_modules[\\/]/.test(decl.getSourceFile().fileName)) continue;
    const name = decl?.name && !ts.isIdentifier(decl.name) ? decl.name.getText() : prop.name;
    const t = checker.getTypeOfSymbolAtLocation(prop, decl ?? at);
    const optional = prop.flags & ts.SymbolFlags.Optional ? '?' : '';
    const sigs = t.getCallSignatures();
    if (decl && (ts.isMethodDeclaration(decl) || ts.isMethodSignature(decl)) && sigs.length) {
      for (const s of sigs)
        lines.push(`  ${name}${optional}${checker.signatureToString(s, at, FLAGS)}`);
    } else {
      const ro =
        decl && ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Readonly ? 'readonly ' : '';
      // A string constant (an error class's brand) is part of the contract: show its value.
      const init =
        decl &&
        ts.isPropertyDeclaration(decl) &&
        decl.initializer &&
        ts.isStringLiteral(decl.initializer)
          ? ` = ${decl.initializer.getText()}`
          : '';
      lines.push(`  ${ro}${name}${optional}: ${checker.typeToString(t, at, FLAGS)}${init}`);
    }
  }
  return lines;
}

function describeExport(checker, exported) {
  const symbol =
    exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
  const decl = symbol.declarations?.[0];
  // `export type { SomeClass }`: usable as a type, not constructible or instanceof-able.
  const typeOnly = (exported.declarations ?? []).some(
    (d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly),
  );
  const kind =
    kindOf(symbol) + (typeOnly && symbol.flags & ts.SymbolFlags.Value ? ', type-only' : '');
  const out = [`### ${exported.name} (${kind})`, '', '```ts'];
  if (symbol.flags & ts.SymbolFlags.Class) {
    const classType = checker.getTypeOfSymbolAtLocation(symbol, decl);
    const base = decl.heritageClauses?.map((h) => h.getText()).join(' ');
    out.push(`class ${exported.name}${base ? ` ${base}` : ''} {`);
    for (const s of typeOnly ? [] : classType.getConstructSignatures()) {
      const params = s.parameters.map((p) => {
        const d = p.valueDeclaration;
        const optional = d && ts.isParameter(d) && (d.questionToken || d.initializer) ? '?' : '';
        return `${p.name}${optional}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(p, decl), decl, FLAGS)}`;
      });
      out.push(`  constructor(${params.join(', ')})`);
    }
    const statics = members(checker, classType, decl).filter((l) => !/^\s+prototype:/.test(l));
    out.push(...statics.map((l) => `  static${l.replace(/^ {2}/, ' ')}`));
    out.push(...members(checker, checker.getDeclaredTypeOfSymbol(symbol), decl), '}');
  } else if (symbol.flags & ts.SymbolFlags.Function) {
    const t = checker.getTypeOfSymbolAtLocation(symbol, decl);
    for (const s of t.getCallSignatures())
      out.push(`function ${exported.name}${checker.signatureToString(s, decl, FLAGS)}`);
  } else {
    if (symbol.flags & ts.SymbolFlags.Variable) {
      const t = checker.getTypeOfSymbolAtLocation(symbol, decl);
      out.push(`const ${exported.name}: ${checker.typeToString(t, decl, FLAGS)}`);
    }
    if (symbol.flags & ts.SymbolFlags.Interface) {
      const t = checker.getDeclaredTypeOfSymbol(symbol);
      out.push(`interface ${exported.name} {`, ...members(checker, t, decl), '}');
    } else if (symbol.flags & ts.SymbolFlags.TypeAlias) {
      const aliasDecl = symbol.declarations.find(ts.isTypeAliasDeclaration) ?? decl;
      const params = aliasDecl.typeParameters
        ? `<${aliasDecl.typeParameters.map((p) => p.getText()).join(', ')}>`
        : '';
      out.push(`type ${exported.name}${params} = ${aliasDecl.type.getText().replace(/\s+/g, ' ')}`);
    } else if (symbol.flags & ts.SymbolFlags.Enum) {
      out.push(`enum ${exported.name} { ${decl.members.map((m) => m.name.getText()).join(', ')} }`);
    }
  }
  out.push('```', '');
  return out.join('\n');
}

function render(program, entry) {
  const checker = program.getTypeChecker();
  const sourceFile = program.getSourceFile(entry.source);
  const moduleSymbol = checker.getSymbolAtLocation(sourceFile);
  const exports = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
  const sorted = [...exports].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header = [
    `# API report: ${entry.name}`,
    '',
    `<!-- Generated by scripts/api-report.mjs from ${relative(root, entry.source)}; do not edit. Run \`npm run api:update\` after changing the public surface. -->`,
    '',
    `${sorted.length} exported names.`,
    '',
  ];
  const text = `${[...header, ...sorted.map((s) => describeExport(checker, s))].join('\n').trimEnd()}\n`;
  // The checker writes an unexported type as import("<absolute path>"): make it relative to the
  // repository, so the report is the same in every checkout (CI clones elsewhere).
  return text.split(`import("${root}/`).join('import("');
}

const all = entries();
const config = ts.getParsedCommandLineOfConfigFile(
  join(root, 'tsconfig.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  },
);
const program = ts.createProgram({
  rootNames: all.map((e) => e.source),
  options: { ...config.options, noEmit: true },
});
const reports = new Map(all.map((e) => [e.file, render(program, e)]));

if (check) {
  const stale = [];
  for (const [file, text] of reports) {
    const path = join(outDir, file);
    if (!existsSync(path) || readFileSync(path, 'utf8') !== text) stale.push(file);
  }
  const extra = existsSync(outDir)
    ? readdirSync(outDir).filter((f) => f.endsWith('.api.md') && !reports.has(f))
    : [];
  if (stale.length || extra.length) {
    console.error(
      `API report out of date (${[...stale, ...extra].join(', ')}): the public surface changed.\n` +
        'Review the change, then run `npm run api:update` and commit api/.',
    );
    process.exit(1);
  }
  console.log(`API reports up to date (${reports.size} entries).`);
} else {
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir))
    if (f.endsWith('.api.md') && !reports.has(f)) rmSync(join(outDir, f));
  for (const [file, text] of reports) writeFileSync(join(outDir, file), text);
  console.log(`Wrote ${reports.size} API reports to ${relative(root, outDir)}/.`);
}
