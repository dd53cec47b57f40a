# A small CWL CommandLineTool for the Part 2 tests and docs/deploying-processes.md:
# counts the words of a text file with wc (argv, no shell).
cwlVersion: v1.2
class: CommandLineTool
id: wordcount
label: Count words
doc: Counts the words of a text file with wc -w.
baseCommand: [wc, -w]
requirements:
  ResourceRequirement: {coresMin: 1, ramMin: 256}
inputs:
  text:
    type: File
    label: Text file
    inputBinding: {position: 1}
outputs:
  counts:
    type: stdout
    format: iana:text/plain
stdout: counts.txt
$namespaces:
  iana: https://www.iana.org/assignments/media-types/
