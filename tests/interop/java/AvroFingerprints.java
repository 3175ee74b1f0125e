// Prints, for each .avsc given, what the Avro reference implementation computes:
//   <file> <single-object header fingerprint, 8 bytes little-endian, hex> <as Java long> <Parsing Canonical Form>
// Used by tests/avro_reference.rs to check smsflow's fingerprints; it uses no smsflow code.
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

public class AvroFingerprints {
  public static void main(String[] args) throws Exception {
    for (String path : args) {
      // A fresh parser per file: each file defines its record and nested types on its own.
      Schema schema = new Schema.Parser().parse(new File(path));
      long fp = SchemaNormalization.parsingFingerprint64(schema);
      byte[] le = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fp).array();
      StringBuilder hex = new StringBuilder();
      for (byte b : le) hex.append(String.format("%02x", b));
      System.out.println(new File(path).getName() + " " + hex + " " + fp + " "
          + SchemaNormalization.toParsingForm(schema));
    }
  }
}
