# A CommandLineTool running a Python one-liner: its argument keeps shell
# metacharacters as plain text (CWL runs argv without a shell).
cwlVersion: v1.2
class: CommandLineTool
id: shout
label: Shout
doc: Upper-cases a message (and reports its length) with a Python one-liner.
baseCommand: [python3, -c, "import sys, json; m = sys.argv[1]; print(json.dumps({'text': m.upper(), 'length': len(m)}))"]
inputs:
  message:
    type: string
    inputBinding: {position: 1}
  times:
    type: int?
    default: 1
outputs:
  result:
    type: stdout
    format: iana:application/json
stdout: result.json
$namespaces:
  iana: https://www.iana.org/assignments/media-types/
